#!/bin/sh
# /etc/acpi/PWRF/00000080: what busybox acpid runs when the power button is pressed (qemu's
# system_powerdown, a hypervisor's "shut down"): a clean power off.
exec /sbin/poweroff
