"""steadystream.runbooks"""
