"""A containerd service, modelled on the cri-containerd service of LinuxKit's Kubernetes project.

Covers: ``runtime`` merged field by field (the entry's ``cgroups`` and ``namespace``, the
label's ``mkdir``) and ``bindNS`` key by key (label ``mnt``, entry ``net``, and the entry's
``pid: ""`` winning over the label's path), ``cgroupsPath`` placed between ``resources`` and
``namespaces``, the image's WorkingDir as cwd, binds with user options. Checked by hand.
"""

from kitdsl import BindNS, Runtime, Service, System

system = System(
    services=[
        Service(
            name="containerd",
            image="linuxkit/containerd:v1.0.0",
            cgroups_path="podruntime/containerd",
            runtime=Runtime(
                cgroups=["podruntime", "systemreserved"],
                bind_ns=BindNS(net="/run/netns/containerd", pid=""),
                namespace="services.linuxkit",
            ),
        )
    ]
)
target = ("services", 0)
