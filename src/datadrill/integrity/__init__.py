"""Integrity checks: does the sink hold exactly what the source holds?"""
