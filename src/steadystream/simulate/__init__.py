"""steadystream.simulate"""
