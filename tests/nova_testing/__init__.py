"""Test support shared by the integration suites: real servers on free loopback ports,
condition polling, a crafted RTMP publisher, nginx-rtmp and ffmpeg runners.

A plain package (no tests in it), importable because pyproject puts ``tests`` on the
pytest ``pythonpath``; fixtures that use it stay in the conftests. Example::

    from nova_testing.waiting import wait_for
"""
