"""steadystream.dashboards"""
