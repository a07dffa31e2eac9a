"""The models: LinuxKit's fields and defaults, and precise errors for bad values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kitdsl import (
    Device,
    File,
    Kernel,
    Mount,
    Onboot,
    Onshutdown,
    Resources,
    Service,
    System,
    Volume,
)
from kitdsl.dsl.types import ALL_CAPABILITIES, ImageProvider
from kitdsl.errors import ConfigError
from kitdsl.load.validation import describe_validation_error


def messages(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return "\n".join(describe_validation_error(exc.value)[1])


def test_unset_fields_are_none_and_defaults_follow_linuxkit() -> None:
    service = Service(name="getty", image="linuxkit/getty:v1")
    assert service.capabilities is None  # unset: the label's, else none
    assert service.env is None
    kernel = Kernel(image="linuxkit/kernel:6.6")
    assert (kernel.binary, kernel.tar, kernel.ucode, kernel.cmdline) == (
        "kernel",
        "kernel.tar",
        None,
        "",
    )
    assert Kernel(image="k:1", tar="none").tar is None
    assert Kernel(image="k:1", tar="").tar is None
    assert File(path="etc/x", contents="").default_mode == 0o600
    assert File(path="etc/d", directory=True).default_mode == 0o700


def test_unknown_field_suggests_the_right_one() -> None:
    with pytest.raises(ValidationError) as exc:
        Service(name="a", image="b:1", capabilites=["CAP_NET_ADMIN"])  # type: ignore[call-arg]
    assert "unknown field 'capabilites'; did you mean 'capabilities'?" in messages(exc)


def test_wrong_type() -> None:
    with pytest.raises(ValidationError) as exc:
        Service(name="a", image="b:1", env="A=1")  # type: ignore[arg-type]
    assert "env: Input should be a valid list" in messages(exc)


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        (["CAP_NET_ADMN"], "did you mean 'CAP_NET_ADMIN'"),
        (["net_admin"], "write it as 'CAP_NET_ADMIN'"),
        (["cap_sys_admin"], "write it as 'CAP_SYS_ADMIN'"),
        (["all", "CAP_CHOWN"], "'all' must be the only entry"),
    ],
)
def test_bad_capability(caps: list[str], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Service(name="a", image="b:1", capabilities=caps)  # type: ignore[arg-type]
    assert message in messages(exc)


def test_capabilities_all_none_case_insensitive() -> None:
    assert Service(name="a", image="b:1", capabilities=["ALL"]).capabilities == ["all"]  # type: ignore[list-item]
    assert Service(name="a", image="b:1", ambient=["None"]).ambient == ["none"]  # type: ignore[list-item]
    assert len(ALL_CAPABILITIES) == 41
    assert ALL_CAPABILITIES[0] == "CAP_CHOWN"
    assert ALL_CAPABILITIES[-1] == "CAP_CHECKPOINT_RESTORE"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("Nginx:1", "must be lower case"),
        ("nginx:", "invalid tag"),
        ("nginx@sha256:12", "invalid digest"),
    ],
)
def test_bad_image_reference(image: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Service(name="a", image=image)
    assert f"image: invalid image reference {image!r}" in messages(exc)
    assert message in messages(exc)


def test_image_provider_is_accepted_and_serialised_as_its_reference() -> None:
    class Built(ImageProvider):
        @property
        def reference(self) -> str:
            return "localhost:5000/pkg/httpd:abc123"

    service = Service(name="web", image=Built())
    assert service.model_dump()["image"] == "localhost:5000/pkg/httpd:abc123"
    with pytest.raises(ValidationError):
        Service(name="web", image=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [0o644, "0644", "644", "0o644"])
def test_modes_as_int_or_octal_string(mode: int | str) -> None:
    file = File(path="etc/motd", contents="hi", mode=mode)
    assert file.mode == 0o644
    assert file.model_dump(by_alias=True)["mode"] == "0644"


@pytest.mark.parametrize(
    ("mode", "message"), [("0968", "not an octal"), (0o17777, "out of range"), (True, "boolean")]
)
def test_bad_modes(mode: object, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        File(path="etc/motd", contents="hi", mode=mode)  # type: ignore[arg-type]
    assert message in messages(exc)


def test_ids_by_number_root_or_container_name() -> None:
    system = System(
        onboot=[Onboot(name="a", image="x:1")],
        onshutdown=[Onshutdown(name="b", image="x:1")],
        services=[Service(name="c", image="x:1", uid="a", gid="root", additional_gids=[5, "c"])],
    )
    assert system.container_ids() == {"a": 100, "b": 101, "c": 102}
    assert [system.resolve_id(ref) for ref in ("a", "c", "root", "", 7)] == [100, 102, 0, 0, 7]


def test_id_given_as_digit_string_is_an_error() -> None:
    with pytest.raises(ValidationError) as exc:
        Service(name="a", image="x:1", uid="1000")
    assert "write the id as a number (1000)" in messages(exc)


def test_unknown_id_name_points_at_the_container() -> None:
    service = Service(name="c", image="x:1", uid="nobody")
    with pytest.raises(ConfigError) as exc:
        System(services=[service])
    assert "uid 'nobody' is neither a number, 'root', nor the name of a container" in str(exc.value)
    assert exc.value.location == service.origin
    assert exc.value.location is not None
    assert exc.value.location.file == __file__


def test_duplicate_names_name_both_sites() -> None:
    first = Onboot(name="dup", image="x:1")
    second = Service(name="dup", image="y:1")
    with pytest.raises(ConfigError) as exc:
        System(onboot=[first], services=[second])
    assert exc.value.location == second.origin
    assert f"first defined in onboot at {first.origin}" in exc.value.details[0]


def test_container_names_are_safe_ids() -> None:
    for bad in ("", "a/b", "-x", "a b", "x" * 77):
        with pytest.raises(ValidationError):
            Service(name=bad, image="x:1")


def test_namespace_values_are_checked() -> None:
    assert Service(name="a", image="x:1", net="/run/netns/wg").net == "/run/netns/wg"
    assert Service(name="a", image="x:1", net="none").net == "none"
    with pytest.raises(ValidationError) as exc:
        Service(name="a", image="x:1", pid="none")
    assert "pid must be 'host', 'new', 'root' or an absolute path" in messages(exc)


def test_binds_tmpfs_rlimits_env_are_checked() -> None:
    ok = Service(
        name="a",
        image="x:1",
        binds=["/a:/b", "/c:/d:ro,rshared", "vol:/data"],
        tmpfs=["/run:size=10m"],
        rlimits=["nofile,1024,4096", "RLIMIT_CORE, unlimited, unlimited"],
        env=["A=1", "B="],
    )
    assert ok.binds is not None
    for field, value in [
        ("binds", ["/a"]),
        ("binds", ["/a:b"]),
        ("binds", ["/a:/b:ro:x"]),
        ("binds", ["/a:/b:"]),
        ("tmpfs", ["/run:"]),
        ("tmpfs", ["run"]),
        ("rlimits", ["nofile,1"]),
        ("rlimits", ["nofiles,1,2"]),
        ("rlimits", ["nofile,-1,2"]),
        ("env", ["NOVALUE"]),
    ]:
        with pytest.raises(ValidationError):
            Service.model_validate({"name": "a", "image": "x:1", field: value})


def test_devices() -> None:
    assert Device(path="all", type="c").mode is None
    assert Device(path="/dev/kvm", type="c", major=10, minor=232, mode="0666").mode == 0o666
    with pytest.raises(ValidationError, match="needs a mode"):
        Device(path="/dev/kvm", type="c", major=10, minor=232)
    with pytest.raises(ValidationError, match="must have type"):
        Device(path="all", type="u")


def test_files_need_exactly_one_kind() -> None:
    with pytest.raises(ValidationError, match="needs exactly one of"):
        File(path="etc/x")
    with pytest.raises(ValidationError, match="it has contents and source"):
        File(path="etc/x", contents="a", source="b")
    with pytest.raises(ValidationError, match="cannot also have contents"):
        File(path="etc/x", directory=True, contents="a")
    with pytest.raises(ValidationError, match=r"must not contain '\.\.'"):
        File(path="etc/../../x", contents="a")
    assert File(path="etc/conf.yml", metadata="yaml").metadata == "yaml"
    assert File(path="bin/sh", symlink="busybox").symlink == "busybox"


def test_volumes() -> None:
    with pytest.raises(ValidationError, match="lower-case"):
        Volume(name="volA")
    with pytest.raises(ValidationError, match="os/arch"):
        Volume(name="v", format="oci", platforms=["amd64"])
    ro = Volume(name="data", readonly=True)
    with pytest.raises(ConfigError, match="read-only"):
        System(volumes=[ro], services=[Service(name="s", image="x:1", binds=["data:/data"])])
    System(volumes=[ro], services=[Service(name="s", image="x:1", binds=["data:/data:ro"])])
    with pytest.raises(ConfigError, match="read-only"):
        System(volumes=[ro], services=[Service(name="s", image="x:1", binds=["data:/d:rw,ro"])])
    with pytest.raises(ConfigError, match="names volume 'nope'"):
        System(services=[Service(name="s", image="x:1", binds_add=["nope:/data"])])
    mount = Mount(type="bind", source="missing", destination="/m")
    with pytest.raises(ConfigError, match="names volume 'missing'"):
        System(services=[Service(name="s", image="x:1", mounts=[mount])])
    with pytest.raises(ConfigError, match="duplicate volume name 'v'"):
        System(volumes=[Volume(name="v"), Volume(name="v")])


def test_nested_resources_validate() -> None:
    resources = Resources.model_validate(
        {
            "memory": {"limit": 1 << 30, "swappiness": 10},
            "hugepage_limits": [{"page_size": 2048, "limit": 1}],
        }
    )
    assert resources.memory is not None and resources.memory.limit == 1 << 30
    assert resources.hugepage_limits is not None
    assert resources.hugepage_limits[0].page_size == "2048"
    with pytest.raises(ValidationError):
        Resources.model_validate({"memory": {"swappiness": 101}})


def test_models_are_frozen_and_compare_by_value() -> None:
    a = Service(name="a", image="x:1", env=["A=1"])
    b = Service(name="a", image="x:1", env=["A=1"])
    assert a == b  # the origin is not part of equality
    assert a.origin != b.origin
    with pytest.raises(ValidationError):
        a.name = "b"  # type: ignore[misc]
    assert Onboot(name="a", image="x:1") != Service(name="a", image="x:1")


def test_sections_take_only_their_own_kind() -> None:
    with pytest.raises(ValidationError):
        System(services=[Onboot(name="a", image="x:1")])  # type: ignore[list-item]


def test_id_range() -> None:
    assert Service(name="a", image="x:1", uid=2**32 - 1).uid == 2**32 - 1
    with pytest.raises(ValidationError, match="out of range"):
        Service(name="a", image="x:1", uid=2**32)
