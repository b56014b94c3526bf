"""Quantization support: calibration sets and accuracy-drift measurement of converted artifacts.

Filled by the conversion issue.
"""
