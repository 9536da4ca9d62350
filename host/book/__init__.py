"""Order-by-order books over ITCH 5.0.

``reference`` is the readable golden book, ``fast`` its numba twin with the
same output, ``records`` the record layouts both emit (shared with the
fabric's model and RTL), ``bench`` their throughput measurements.
"""
