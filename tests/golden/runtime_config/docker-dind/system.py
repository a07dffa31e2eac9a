"""The Docker daemon as a service, as in LinuxKit's examples/docker.yml (an image without label).

Covers: a ``cgroup`` mount with only type and options (source and destination filled in; it
replaces the default /sys/fs/cgroup mount, so no ``ro``), entry capabilities ``all``, net from
the host, the image's Env used as is (including a ``&`` escaped the Go way), and
``runtime.mkdir``. Checked by hand.
"""

from kitdsl import Mount, Runtime, Service, System

system = System(
    services=[
        Service(
            name="docker",
            image="docker:27.3.1-dind",
            capabilities=["all"],
            net="host",
            mounts=[Mount(type="cgroup", options=["rw", "nosuid", "noexec", "nodev", "relatime"])],
            binds=[
                "/etc/resolv.conf:/etc/resolv.conf",
                "/var/lib/docker:/var/lib/docker",
                "/lib/modules:/lib/modules",
                "/etc/docker/daemon.json:/etc/docker/daemon.json",
            ],
            command=["/usr/local/bin/docker-init", "/usr/local/bin/dockerd"],
            runtime=Runtime(mkdir=["/var/lib/docker"]),
        )
    ]
)
target = ("services", 0)
