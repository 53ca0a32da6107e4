"""steadystream.instrumentation"""
