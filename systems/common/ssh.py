"""Remote access: dropbear-style sshd with the team's authorised key."""

from kitdsl import File, Service

sshd = Service(
    name="sshd",
    image="linuxkit/sshd:75f399fbfb6455dfccd4cb30543d0b4b494d28c1",
    binds_add=["/root/.ssh:/root/.ssh"],
)

authorized_keys = File(path="root/.ssh/authorized_keys", source="../keys/edge.pub", mode=0o600)
root_ssh = File(path="root/.ssh", directory=True, mode=0o700)
