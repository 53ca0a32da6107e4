"""steadystream.alerts"""
