"""steadystream.exporters"""
