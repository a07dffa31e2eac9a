"""kitdsl: build lean, immutable Linux systems from OCI images, configured in Python.

Users write ``system.py`` files with the models exported here::

    from kitdsl import Kernel, Onboot, Service, System

    system = System(
        kernel=Kernel(image="linuxkit/kernel:6.6.71", cmdline="console=ttyS0"),
        init=["linuxkit/init:v1.2.0"],
        services=[Service(name="getty", image="linuxkit/getty:v1.0")],
    )
"""

from kitdsl.dsl import *  # noqa: F403
from kitdsl.dsl import __all__ as _dsl_all

__all__ = list(_dsl_all)
__version__ = "0.1.0"
