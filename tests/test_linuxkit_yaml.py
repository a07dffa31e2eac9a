"""Reading and writing LinuxKit YAML: strictness, errors at the user's line, multi-file merge."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from kitdsl import File, ImageProvider, Kernel, Onboot, Service, System
from kitdsl.dsl.base import defined_at
from kitdsl.errors import ConfigError, Location
from kitdsl.load import _yamlnodes as yn
from kitdsl.load.file_sources import source_from, source_path
from kitdsl.load.linuxkit_yaml import (
    dump_linuxkit_yaml,
    load_linuxkit_yaml,
    parse_container_config,
    parse_linuxkit_yaml,
)

DATA = Path(__file__).parent / "data" / "linuxkit"
FIXTURES = sorted(DATA.glob("*.yml"))


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, "linuxkit.yml", text)
    with pytest.raises(ConfigError) as info:
        load_linuxkit_yaml([path])
    assert info.value.location is not None
    assert info.value.location.file == str(path)
    return info.value


# --- reading -------------------------------------------------------------------------------------


def test_classic_example_loads_with_every_field() -> None:
    system = load_linuxkit_yaml([DATA / "linuxkit.yml"])
    assert system.kernel == Kernel(
        image="linuxkit/kernel:6.6.71",
        cmdline="console=tty0 console=ttyS0 console=ttyAMA0 console=ttysclp0",
    )
    assert system.init[0] == "linuxkit/init:v1.2.0"
    assert [c.name for c in system.onboot] == ["sysctl", "dhcpcd"]
    assert system["dhcpcd"].command == [
        "/sbin/dhcpcd",
        "--nobackground",
        "-f",
        "/dhcpcd.conf",
        "-1",
    ]
    assert system["sshd"].binds_add == ["/root/.ssh:/root/.ssh"]
    assert system["getty"].env == ["INSECURE=true"]
    keys = system.files[1]
    assert (keys.source, keys.mode, keys.optional) == ("~/.ssh/id_rsa.pub", 0o600, True)
    assert system.files[2].contents == (
        "Welcome to LinuxKit.\nLog in as root; there is no password.\n"
    )


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_every_fixture_loads(path: Path) -> None:
    assert isinstance(load_linuxkit_yaml([path]), System)


def test_components_remember_their_yaml_line() -> None:
    path = DATA / "linuxkit.yml"
    system = load_linuxkit_yaml([path])
    lines = path.read_text().splitlines()
    for container in [*system.onboot, *system.services]:
        assert container.origin is not None and container.origin.line is not None
        assert container.origin.file == str(path.absolute())
        assert lines[container.origin.line - 1].strip() == f"- name: {container.name}"
    assert system.kernel is not None and system.kernel.origin == Location(str(path.absolute()), 2)
    assert system.files[0].origin == Location(str(path.absolute()), 32)


def test_nested_values_and_named_ids() -> None:
    system = load_linuxkit_yaml([DATA / "hardened.yml"])
    redis = system["redis"]
    assert (redis.uid, redis.additional_gids) == ("redis", ["getty", 0])
    assert redis.resources is not None and redis.resources.memory is not None
    assert redis.resources.memory.disable_oom_killer is False
    assert redis.resources.hugepage_limits is not None
    assert redis.resources.hugepage_limits[0].page_size == "2MB"
    assert redis.sysctl == {"net.core.somaxconn": "1024", "vm.overcommit_memory": "1"}
    assert redis.ambient == []  # set to empty, which is not the same as unset
    assert system["monitor"].capabilities_add == ["CAP_NET_ADMIN"]
    assert system.onboot[1].devices is not None and system.onboot[1].devices[0].mode == 0o660
    wg0 = load_linuxkit_yaml([DATA / "wireguard.yml"])["wg0"]
    assert wg0.runtime is not None and wg0.runtime.bind_ns is not None
    assert wg0.runtime.bind_ns.net == "/run/netns/wg0"
    assert wg0.runtime.interfaces is not None and wg0.runtime.interfaces[0].create_in_root


def test_scalars_resolve_as_yaml_1_2() -> None:
    system = parse_linuxkit_yaml(
        textwrap.dedent(
            """
            services:
              - name: a
                image: alpine:3.20
                hostname: yes
                cwd: off
                oomScoreAdj: 0x10
                uid: 0o12
                annotations:
                  flag: "true"
            """
        )
    )
    service = system["a"]
    assert (service.hostname, service.cwd) == ("yes", "off")
    assert (service.oom_score_adj, service.uid) == (16, 10)
    assert service.annotations == {"flag": "true"}


def test_at_scalars_other_than_pkg_are_kept() -> None:
    system = parse_linuxkit_yaml("services:\n  - {name: a, image: alpine, hostname: '@home'}\n")
    assert system["a"].hostname == "@home"


def test_merge_keys_and_anchors() -> None:
    system = parse_linuxkit_yaml(
        textwrap.dedent(
            """
            services:
              - &common
                name: one
                image: alpine:3.20
                env: [A=1]
              - <<: *common
                name: two
            """
        )
    )
    assert system["two"].image == "alpine:3.20"
    assert system["two"].env == ["A=1"]


def test_relative_file_source_is_kept_and_its_origin_names_the_yaml_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write(tmp_path, "sub/x.yml", "files:\n  - path: etc/motd\n    source: motd.txt\n")
    file = load_linuxkit_yaml([path]).files[0]
    assert file.source == "motd.txt"
    assert file.origin is not None and Path(file.origin.file).parent == tmp_path / "sub"


def test_trust_is_accepted_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "t.yml", "trust:\n  org:\n    - linuxkit\n  image: []\n")
    with caplog.at_level(logging.WARNING, logger="kitdsl"):
        assert load_linuxkit_yaml([path]) == System()
    assert "'trust' is ignored" in caplog.text
    assert "t.yml:1:1" in caplog.text


# --- errors ---------------------------------------------------------------------------------------

SERVICES = """\
services:
  - name: getty
    image: linuxkit/getty:v1.0.0
  - name: rngd
    image: linuxkit/rngd:v1.0.0
"""


def test_unknown_key_names_path_line_and_suggestion(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, SERVICES + "  - name: sshd\n    image: x/sshd:1\n    capabilites: [all]\n"
    )
    assert "unknown key services[2].capabilites" in error.message
    assert "did you mean 'capabilities'?" in error.message
    assert (error.location.line, error.location.column) == (8, 5)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("kernal:\n  image: x\n", "unknown key kernal (did you mean 'kernel'?)", 1),
        ("services:\n  - {name: a, image: b, masked_paths: []}\n", "'maskedPaths'", 2),
        ("kernel:\n  image: x\n  cmdline: a\n  devices.add: []\n", "unknown key kernel.dev", 4),
        ("services:\n  - name: a\n    image: b\n    runtime:\n      bindNs: {}\n", "'bindNS'", 5),
    ],
)
def test_unknown_keys_at_every_level(tmp_path: Path, text: str, message: str, line: int) -> None:
    error = load_error(tmp_path, text)
    assert message in error.message
    assert error.location is not None and error.location.line == line


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "kernel:\n  image: x\n cmdline: y\n")
    assert error.message.startswith("YAML syntax error")
    assert error.location is not None and error.location.line == 3


def test_wrong_type_names_key_path_line_and_expectation(tmp_path: Path) -> None:
    error = load_error(tmp_path, SERVICES + "    readonly: yes\n")
    assert error.message == (
        "services[1].readonly: expected a boolean (true or false), got the string 'yes'"
    )
    assert error.location is not None and error.location.line == 6
    assert error.hint is not None and "true or false" in error.hint


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("    oomScoreAdj: '5'\n", "services[1].oomScoreAdj: expected an integer, got the string"),
        ("    command: /bin/sh\n", "services[1].command: expected a list, got the string"),
        ("    sysctl:\n      a.b: 1\n", "services[1].sysctl['a.b']: expected a string, got the"),
        ("    uid: [1]\n", "services[1].uid: expected an integer or a string, got a list"),
        ("    resources:\n      pids: 5\n", "services[1].resources.pids: expected a mapping"),
        ("    net:\n", "services[1].net has no value: expected a string"),
        ("    rootfsPropagation: up\n", "expected one of 'shared', 'slave'"),
        ("    env: [A=1, 2]\n", "services[1].env[1]: expected a string, got the number 2"),
    ],
)
def test_wrong_types(tmp_path: Path, snippet: str, message: str) -> None:
    error = load_error(tmp_path, SERVICES + snippet)
    assert message in error.message
    last_line_of_snippet = SERVICES.count("\n") + snippet.count("\n")
    assert error.location is not None and error.location.line == last_line_of_snippet


def test_bad_capability(tmp_path: Path) -> None:
    error = load_error(tmp_path, SERVICES + "    capabilities:\n      - CAP_NET_ADMN\n")
    assert "services[1].capabilities[0]: unknown capability 'CAP_NET_ADMN'" in error.message
    assert "did you mean 'CAP_NET_ADMIN'?" in error.message
    assert error.location is not None and error.location.line == 7


def test_bad_image_reference(tmp_path: Path) -> None:
    error = load_error(tmp_path, "init:\n  - linuxkit/init:v1.2.0\n  - linuxkit/runc:-v1\n")
    assert error.message.startswith("init[1]: invalid image reference 'linuxkit/runc:-v1'")
    assert error.location is not None and (error.location.line, error.location.column) == (3, 5)


def test_mode_must_be_a_quoted_string(tmp_path: Path) -> None:
    error = load_error(tmp_path, "files:\n  - path: a\n    contents: x\n    mode: 0644\n")
    assert 'files[0].mode: mode must be a quoted octal string in LinuxKit YAML, e.g. "0644"' in (
        error.message
    )


def test_missing_required_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "onboot:\n  - image: alpine\n")
    assert error.message == "onboot[0]: missing required key 'name'"
    assert error.location is not None and error.location.line == 2


def test_duplicate_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, SERVICES + "    image: linuxkit/rngd:v2\n")
    assert error.message == "duplicate key services[1].image"
    assert error.location is not None and error.location.line == 6
    assert error.details == ("first given at line 5",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- kernel\n", "the top level must be a mapping of sections, not a list"),
        ("linuxkit\n", "the top level must be a mapping of sections, not the string"),
        ("onboot:\n", "onboot: expected a list, got nothing (null)"),
        ("kernel: linuxkit/kernel:6.6\n", "kernel: expected a mapping"),
        ("services:\n  - {name: a, image: b, sysctl: {1: x}}\n", "keys must be strings"),
        ("kernel: {}\n---\nkernel: {}\n", "a LinuxKit file holds a single YAML document"),
        ("kernel:\n  cmdline: a\x07b\n", "character '\\x07' is not allowed in YAML text"),
        ("kernel:\n  image: !!int x\n", "'x' is not a valid int"),
        ("kernel:\n  image: !custom x\n", "unsupported YAML tag '!custom'"),
    ],
)
def test_shape_errors(tmp_path: Path, text: str, message: str) -> None:
    assert message in load_error(tmp_path, text).message


def test_package_templates_are_refused_with_advice(tmp_path: Path) -> None:
    error = load_error(tmp_path, "services:\n  - name: app\n    image: '@pkg:./pkg/app'\n")
    assert "LinuxKit package templates ('@pkg:./pkg/app') are not supported yet" in error.message
    assert error.hint is not None and "linuxkit pkg build ./pkg/app" in error.hint
    assert error.location is not None and error.location.line == 3


def test_model_checks_point_at_the_entry(tmp_path: Path) -> None:
    error = load_error(tmp_path, "files:\n  - path: a\n  - path: b\n    directory: true\n")
    assert error.message.startswith("files[0]: file 'a' needs exactly one of contents")
    assert error.location is not None and error.location.line == 2


def test_duplicate_service_across_files_names_both_sites(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", SERVICES)
    second = write(tmp_path, "b.yml", "services:\n  - name: rngd\n    image: x/rngd:2\n")
    with pytest.raises(ConfigError) as info:
        load_linuxkit_yaml([first, second])
    error = info.value
    assert "duplicate container name 'rngd'" in error.message
    assert error.location == Location(str(second), 2)
    assert any(str(Location(str(first), 4)) in detail for detail in error.details)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_linuxkit_yaml([tmp_path / "absent.yml"])


def test_every_unknown_key_of_an_entry_is_reported(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, SERVICES + "    nett: host\n    runtime:\n      mkdr: [/a]\n    pidd: host\n"
    )
    assert error.message == "unknown key services[1].nett (did you mean 'net'?)"
    assert error.location is not None and error.location.line == 6
    path = str(tmp_path / "linuxkit.yml")
    assert error.details == (
        f"{Location(path, 8, 7)}: unknown key services[1].runtime.mkdr (did you mean 'mkdir'?)",
        f"{Location(path, 9, 5)}: unknown key services[1].pidd (did you mean 'pid'?)",
    )


def test_unknown_keys_come_with_the_next_shape_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, SERVICES + "    nett: host\n    readonly: [1]\n")
    assert error.message == "unknown key services[1].nett (did you mean 'net'?)"
    assert len(error.details) == 1
    assert (
        "services[1].readonly: expected a boolean (true or false), got a list" in (error.details[0])
    )


# --- image labels ---------------------------------------------------------------------------------

LABEL = "label of docker.io/x/y:1"


def label_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_container_config(text, file=LABEL)
    assert info.value.location is not None and info.value.location.file == LABEL
    return info.value


def test_label_uses_the_keys_and_scalars_of_an_entry() -> None:
    config = parse_container_config(
        textwrap.dedent(
            """
            capabilities.add: [CAP_NET_ADMIN]
            maskedPaths: [/proc/kcore]
            hostname: yes
            oomScoreAdj: 0x10
            devices:
              - {path: /dev/fuse, type: c, major: 10, minor: 229, mode: "0666"}
            runtime:
              bindNS: {net: /run/netns/a}
            """
        ),
        file=LABEL,
    )
    assert config is not None
    assert config.capabilities_add == ["CAP_NET_ADMIN"]
    assert config.masked_paths == ["/proc/kcore"]
    assert (config.hostname, config.oom_score_adj) == ("yes", 16)
    assert config.devices is not None and config.devices[0].mode == 0o666
    assert config.runtime is not None and config.runtime.bind_ns is not None
    assert config.runtime.bind_ns.net == "/run/netns/a"
    assert config.origin == Location(LABEL, 1)


def test_json_label_and_its_origin() -> None:
    entry = Location("system.py", 7)
    text = '{"readonly":true,"binds":["/a:/b"],"uid":"nobody","sysctl":{"a.b":"1"}}'
    config = parse_container_config(text, file=LABEL, origin=entry)
    assert config is not None
    assert (config.readonly, config.binds, config.uid) == (True, ["/a:/b"], "nobody")
    assert config.sysctl == {"a.b": "1"}
    assert config.origin == entry


@pytest.mark.parametrize("text", ["", "  \n", "# a comment\n"])
def test_empty_label_document(text: str) -> None:
    assert parse_container_config(text, file=LABEL) is None


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        (
            "readonly: yes\n",
            "readonly: expected a boolean (true or false), got the string 'yes'",
            (1, 11),
        ),
        ("{name: x}", "'name' cannot be set in the label: the system names its containers", (1, 2)),
        ("cwd: /\nimage: alpine\n", "'image' cannot be set in the label", (2, 1)),
        ("[cwd]", "expected a mapping of container settings, got a list", (1, 1)),
        ("null", "expected a mapping of container settings, got nothing (null)", (1, 1)),
        ('{"maskedPath": []}', "unknown key maskedPath (did you mean 'maskedPaths'?)", (1, 2)),
        ("runtime:\n  bindNs: {}\n", "unknown key runtime.bindNs (did you mean 'bindNS'?)", (2, 3)),
        (
            "devices:\n  - {path: /x, type: c, mode: 0666}\n",
            "devices[0].mode: mode must be",
            (2, 31),
        ),
        ("capabilities: [all, CAP_KILL]\n", "capabilities: 'all' must be the only entry", (1, 15)),
        ("cwd: /\ncwd: /a\n", "duplicate key cwd", (2, 1)),
        ("{a: [", "YAML syntax error", (2, 1)),
    ],
)
def test_label_errors(text: str, message: str, position: tuple[int, int]) -> None:
    error = label_error(text)
    assert message in error.message
    assert error.location is not None
    assert (error.location.line, error.location.column) == position


# --- several files --------------------------------------------------------------------------------


def test_second_file_overrides_kernel_cmdline_and_appends_services() -> None:
    system = load_linuxkit_yaml([DATA / "base.yml", DATA / "base-debug.yml"])
    assert system.kernel == Kernel(
        image="linuxkit/kernel:6.6.71",
        cmdline="console=ttyS0 debug loglevel=8",
        tar=None,
        ucode="intel-ucode.cpio",
    )
    assert [c.name for c in system.services] == ["getty", "rngd", "sshd"]
    assert system.init == load_linuxkit_yaml([DATA / "base.yml"]).init
    assert system.files[0].path == "root/.ssh/authorized_keys"


@pytest.mark.parametrize(
    ("later", "expected"),
    [
        ("kernel:\n  cmdline: ''\n", Kernel(image="k/a:1", cmdline="a", tar="t.tar", ucode="u")),
        ("kernel:\n  image: k/b:2\n", Kernel(image="k/b:2", cmdline="a", tar="t.tar", ucode="u")),
        (
            "kernel:\n  binary: bz\n",
            Kernel(image="k/a:1", cmdline="a", binary="bz", tar="t.tar", ucode="u"),
        ),
        ("kernel:\n  tar: ''\n", Kernel(image="k/a:1", cmdline="a", tar=None, ucode="u")),
        ("kernel:\n  tar: none\n", Kernel(image="k/a:1", cmdline="a", tar=None, ucode="u")),
        ("kernel:\n  ucode: ''\n", Kernel(image="k/a:1", cmdline="a", tar="t.tar", ucode="")),
        ("kernel: {}\n", Kernel(image="k/a:1", cmdline="a", tar="t.tar", ucode="u")),
        ("init: [x/y:1]\n", Kernel(image="k/a:1", cmdline="a", tar="t.tar", ucode="u")),
    ],
)
def test_kernel_fields_merge_as_in_linuxkit(tmp_path: Path, later: str, expected: Kernel) -> None:
    first = write(
        tmp_path, "a.yml", "kernel:\n  image: k/a:1\n  cmdline: a\n  tar: t.tar\n  ucode: u\n"
    )
    second = write(tmp_path, "b.yml", later)
    assert load_linuxkit_yaml([first, second]).kernel == expected


def test_lists_are_appended_in_file_order(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", "init: [a/init:1]\nonboot:\n  - {name: one, image: a/x:1}\n")
    second = write(tmp_path, "b.yml", "init: [b/init:1]\nonboot:\n  - {name: two, image: b/x:1}\n")
    system = load_linuxkit_yaml([first, second])
    assert system.init == ["a/init:1", "b/init:1"]
    assert [c.name for c in system.onboot] == ["one", "two"]


def test_references_across_files_resolve_on_the_merged_system(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", "volumes:\n  - name: data\n")
    second = write(
        tmp_path,
        "b.yml",
        "services:\n  - {name: db, image: postgres:16, binds: ['data:/var/lib/pg'], uid: db}\n",
    )
    system = load_linuxkit_yaml([first, second])
    assert system["db"].binds == ["data:/var/lib/pg"]


# --- writing --------------------------------------------------------------------------------------


class _Package(ImageProvider):
    @property
    def reference(self) -> str:
        return "registry.example/team/app:abc123"


def test_dump_is_linuxkit_yaml_in_linuxkit_order() -> None:
    system = System(
        files=[File(path="etc/motd", contents="hi\nthere\n", mode=0o644)],
        services=[Service(name="app", image=_Package(), readonly=False, env=["A=yes"])],
        onboot=[Onboot(name="sysctl", image="linuxkit/sysctl:v1.0.0", binds=[])],
        init=["linuxkit/init:v1.2.0"],
        kernel=Kernel(image="linuxkit/kernel:6.6.71", cmdline="console=ttyS0", tar=None),
    )
    assert dump_linuxkit_yaml(system) == textwrap.dedent(
        """\
        kernel:
          image: linuxkit/kernel:6.6.71
          cmdline: console=ttyS0
          tar: none
        init:
          - linuxkit/init:v1.2.0
        onboot:
          - name: sysctl
            image: linuxkit/sysctl:v1.0.0
            binds: []
        services:
          - name: app
            image: registry.example/team/app:abc123
            env:
              - A=yes
            readonly: false
        files:
          - path: etc/motd
            contents: |
              hi
              there
            mode: "0644"
        """
    )


def test_dump_quotes_what_linuxkit_would_not_read_as_a_string() -> None:
    system = System(
        services=[
            Service(
                name="a",
                image="alpine",
                hostname="yes",
                cwd="0644",
                command=["1e5", "true", "", "~", "0o17", "a: b"],
            )
        ]
    )
    text = dump_linuxkit_yaml(system)
    for quoted in ('"yes"', '"0644"', '"1e5"', '"true"', '""', '"~"', '"0o17"', "'a: b'"):
        assert quoted in text
    assert parse_linuxkit_yaml(text) == system


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_dump_of_each_fixture_reads_back_equal(path: Path, tmp_path: Path) -> None:
    system = load_linuxkit_yaml([path])
    text = dump_linuxkit_yaml(system, base=DATA)
    assert dump_linuxkit_yaml(system, base=DATA) == text  # deterministic
    assert parse_linuxkit_yaml(text) == system
    # Written elsewhere, it names the same files, and reads back to the same text.
    copy = write(tmp_path, path.name, dump_linuxkit_yaml(system, base=tmp_path))
    again = load_linuxkit_yaml([copy])
    assert [source_path(f) for f in again.files] == [source_path(f) for f in system.files]
    assert dump_linuxkit_yaml(again, base=DATA) == text


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_pure_python_parser_reads_the_same(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML without libyaml falls back to its Python parser: same systems, same lines."""
    fast = load_linuxkit_yaml([path])
    monkeypatch.setattr(yn, "_LOADER", yn._Loader)
    slow = load_linuxkit_yaml([path])
    assert slow == fast
    assert [c.origin for _, _, c in slow.containers()] == [
        c.origin for _, _, c in fast.containers()
    ]


@pytest.mark.parametrize("python_parser", [False, True])
def test_syntax_and_character_errors_with_either_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_parser: bool
) -> None:
    if python_parser:
        monkeypatch.setattr(yn, "_LOADER", yn._Loader)
    error = load_error(tmp_path, "kernel:\n  image: [x\nservices: []\n")
    assert error.message.startswith("YAML syntax error")
    assert error.location == Location(str(tmp_path / "linuxkit.yml"), 3, 9)
    assert error.details == ("while parsing a flow sequence at line 2",)
    error = load_error(tmp_path, "kernel:\n  cmdline: é\x07\n")
    assert error.location == Location(str(tmp_path / "linuxkit.yml"), 2, 13)


# --- file sources -------------------------------------------------------------------------------


def _file_at(origin: str | None, source: str) -> File:
    """A file as if defined in ``origin``; ``None``: made where no origin is known."""
    with defined_at(Location(origin or "<unknown>", 3)):
        file = File(path="etc/x", source=source)
    if origin is None:
        file._origin = None
        file._field_origins = {}
    return file


def test_source_path_is_the_absolute_file_a_source_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    assert source_path(_file_at("/p/systems/a.py", "../keys/k.pub")) == Path("/p/keys/k.pub")
    assert source_path(_file_at("/p/a.yml", "/etc/hosts")) == Path("/etc/hosts")
    assert source_path(_file_at("/p/a.yml", "~/k.pub")) == Path("/home/me/k.pub")
    assert source_path(File(path="etc/x", contents="")) is None
    monkeypatch.chdir("/")
    assert source_path(_file_at("<stdin>", "k.pub")) == Path("/k.pub")


@pytest.mark.parametrize(
    ("origin", "source", "base", "expected"),
    [
        ("/p/systems/common/ssh.py", "../keys/k.pub", "/p", "systems/keys/k.pub"),
        ("/p/systems/common/ssh.py", "../keys/k.pub", "/p/out", "../systems/keys/k.pub"),
        ("/p/systems/a.py", "k.pub", "/q", "../p/systems/k.pub"),
        ("/p/a.yml", "./keys//k.pub", "/p", "./keys//k.pub"),  # same folder: kept as written
        ("/p/a.yml", "/etc/hosts", "/q", "/etc/hosts"),
        ("/p/a.yml", "~/k.pub", "/q", "~/k.pub"),
        ("/p/a.yml", "~user/k.pub", "/q", "~user/k.pub"),
        ("/p/~x/a.yml", "k.pub", "/p", "./~x/k.pub"),  # not read as a home directory
        (None, "k.pub", "/q", "k.pub"),  # no origin: nothing to be relative to
    ],
)
def test_source_from_another_folder(
    origin: str | None, source: str, base: str, expected: str
) -> None:
    assert source_from(_file_at(origin, source), Path(base)) == expected


def test_dump_writes_sources_for_the_folder_it_is_read_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "yaml").mkdir()
    path = write(tmp_path, "yaml/a.yml", "files:\n  - path: etc/motd\n    source: motd.txt\n")
    system = load_linuxkit_yaml([path])
    assert "source: ../yaml/motd.txt" in dump_linuxkit_yaml(system, base=tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    assert "source: yaml/motd.txt" in dump_linuxkit_yaml(system)  # the current directory
    assert "source: yaml/motd.txt" in dump_linuxkit_yaml(system, base=Path("."))


def test_a_source_set_by_replace_is_relative_to_where_it_was_set() -> None:
    from kitdsl.dsl.base import defined_at
    from kitdsl.errors import Location

    with defined_at(Location("/p/systems/common/ssh.py", 3)):
        file = File(path="etc/x", source="../keys/k.pub")
    with defined_at(Location("/p/systems/edge.py", 9)):
        changed = file.replace(source="keys/edge.pub")
    assert source_path(changed) == Path("/p/systems/keys/edge.pub")
    assert source_path(changed.replace(mode=0o644)) == Path("/p/systems/keys/edge.pub")
