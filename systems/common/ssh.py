"""Remote access: sshd (dropbear) with the team's authorised key."""

from kitdsl import File, Service, packages

sshd = Service(name="sshd", image=packages.sshd)

authorized_keys = File(path="root/.ssh/authorized_keys", source="../keys/edge.pub", mode=0o600)
root_ssh = File(path="root/.ssh", directory=True, mode=0o700)
