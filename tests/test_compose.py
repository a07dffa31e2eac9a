"""Composition: extend, override, remove, merge, and provenance for --explain."""

from __future__ import annotations

import inspect

import pytest

from kitdsl import File, Kernel, Onboot, Service, System, Volume, merge
from kitdsl.errors import ConfigError


def here() -> int:
    """The caller's line number."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


BASE = System(
    kernel=Kernel(image="linuxkit/kernel:6.6", cmdline="console=ttyS0"),
    init=["linuxkit/init:v1"],
    onboot=[Onboot(name="sysctl", image="linuxkit/sysctl:v1")],
    services=[Service(name="getty", image="linuxkit/getty:v1", env=["INSECURE=false"])],
)


def test_extend_appends_and_leaves_the_base_alone() -> None:
    extended = BASE.extend(
        services=[Service(name="web", image="nginx:1")], init=["linuxkit/runc:v1"]
    )
    assert [s.name for s in extended.services] == ["getty", "web"]
    assert extended.init == ["linuxkit/init:v1", "linuxkit/runc:v1"]
    assert [s.name for s in BASE.services] == ["getty"]


def test_override_changes_one_field_and_records_where() -> None:
    line = here() + 1
    edited = BASE.override("getty", env=["INSECURE=true"])
    getty = edited["getty"]
    assert getty.env == ["INSECURE=true"]
    assert getty.image == "linuxkit/getty:v1"
    assert getty.origin == BASE["getty"].origin  # still defined where the base defined it
    where = getty.field_origin("env")
    assert where is not None and (where.file, where.line) == (__file__, line)
    assert getty.field_origin("image") == getty.origin
    assert BASE["getty"].env == ["INSECURE=false"]


def test_override_is_validated() -> None:
    with pytest.raises(Exception, match="unknown capability"):
        BASE.override("getty", capabilities=["CAP_BOGUS"])


def test_override_or_remove_unknown_name_lists_the_known_ones() -> None:
    line = here() + 2
    with pytest.raises(ConfigError) as exc:
        BASE.override("gety", env=[])
    assert exc.value.message == "nothing named 'gety' in this system"
    assert exc.value.hint == "containers: sysctl, getty; volumes: none; files: none"
    assert exc.value.location is not None and exc.value.location.line == line
    with pytest.raises(ConfigError, match="nothing named 'nope'"):
        BASE.remove("nope")


def test_remove_containers_and_volumes() -> None:
    with_volume = BASE.extend(volumes=[Volume(name="data")])
    trimmed = with_volume.remove("getty", "data", "sysctl")
    assert trimmed.services == [] and trimmed.onboot == [] and trimmed.volumes == []


def test_duplicate_from_extend_names_both_sites() -> None:
    duplicate = Service(name="getty", image="other:1")
    with pytest.raises(ConfigError) as exc:
        BASE.extend(services=[duplicate])
    assert exc.value.location == duplicate.origin
    assert str(BASE["getty"].origin) in exc.value.details[0]


def test_merge_follows_linuxkit_multi_file_rules() -> None:
    second = System(
        kernel=Kernel(cmdline="console=tty0", tar="none"),
        init=["linuxkit/runc:v1"],
        services=[Service(name="sshd", image="linuxkit/sshd:v1")],
        files=[File(path="etc/motd", contents="hi")],
    )
    merged = merge(BASE, second)
    assert merged.kernel is not None
    assert merged.kernel.image == "linuxkit/kernel:6.6"  # the later file set no image
    assert merged.kernel.cmdline == "console=tty0"  # non-empty later value wins
    assert merged.kernel.tar is None  # present in the later file: wins, even "none"
    assert merged.kernel.binary == "kernel"
    assert merged.init == ["linuxkit/init:v1", "linuxkit/runc:v1"]
    assert [s.name for s in merged.services] == ["getty", "sshd"]
    assert len(merged.files) == 1


def test_merge_keeps_earlier_kernel_fields_the_later_file_leaves_out() -> None:
    first = System(kernel=Kernel(image="k:1", ucode="intel-ucode.cpio", tar=""))
    merged = merge(first, System(kernel=Kernel(image="k:2")))
    assert merged.kernel == Kernel(image="k:2", ucode="intel-ucode.cpio", tar=None)


def test_merge_rejects_duplicate_services() -> None:
    with pytest.raises(ConfigError, match="duplicate container name 'getty'"):
        merge(BASE, System(services=[Service(name="getty", image="x:1")]))


def test_replace_on_a_component() -> None:
    getty = BASE["getty"]
    assert getty.replace(env=None).env is None
    assert getty.replace(name="getty2").name == "getty2"


def test_override_and_remove_files_and_volumes() -> None:
    system = BASE.extend(
        files=[File(path="/etc/motd", contents="a"), File(path="etc/issue", contents="b")],
        volumes=[Volume(name="data")],
    )
    edited = system.override("etc/motd", contents="changed", mode=0o644)
    assert edited.files[0].contents == "changed" and edited.files[0].mode == 0o644
    assert edited.override("data", readonly=True).volumes[0].readonly
    trimmed = system.remove("/etc/motd", "data")
    assert [f.path for f in trimmed.files] == ["etc/issue"] and trimmed.volumes == []


def test_ambiguous_names_are_errors() -> None:
    system = BASE.extend(volumes=[Volume(name="getty")])
    with pytest.raises(ConfigError, match="'getty' names components in services and volumes"):
        system.remove("getty")
    twice = BASE.extend(files=[File(path="etc/a", contents="1"), File(path="etc/a", contents="2")])
    with pytest.raises(ConfigError, match="2 files have the path 'etc/a'"):
        twice.override("etc/a", contents="3")
    assert twice.remove("etc/a").files == []


def test_override_takes_name_positionally_so_name_can_change() -> None:
    renamed = BASE.override("getty", name="console")
    assert [s.name for s in renamed.services] == ["console"]


def test_python_values_are_not_coerced() -> None:
    for field, value in (("readonly", "yes"), ("oom_score_adj", "5"), ("env", ("A=1",))):
        with pytest.raises(Exception, match="valid"):
            Service.model_validate({"name": "a", "image": "x:1", field: value})
