"""config.json and runtime.json: golden files, byte for byte, and every error path.

Each directory under ``tests/golden/runtime_config/`` is one container:

* ``system.py`` builds ``system`` and names the container as ``target = (section, index)``; its
  docstring says what the case covers;
* ``image.json`` is the configuration of that container's image, label included;
* ``config.json`` and ``runtime.json`` are the bytes LinuxKit would write.

The expected files were written by hand from the LinuxKit reference (config.go ``ConfigToOCI``,
image.go ``ImageBundle``, the runtime-spec Go structs), not copied from our output.

Setting ``KITDSL_REGENERATE_GOLDENS=1`` rewrites the expected files from the current code. That
only helps after a deliberate change: regenerated goldens must be reviewed line by line
(``git diff tests/golden``) before they are committed, or these tests check nothing.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kitdsl import Mount, Onboot, Onshutdown, Service, System, Volume
from kitdsl.assemble.bundles import bundle_layouts
from kitdsl.assemble.gojson import marshal_indent
from kitdsl.assemble.label import parse_label
from kitdsl.assemble.runtime_config import BundleConfig, bundle_config
from kitdsl.dsl.types import ImageProvider
from kitdsl.errors import ConfigError, ImageConfigError, Location
from kitdsl.oci.image_config import MOBY_CONFIG_LABEL, ImageConfig

GOLDEN = Path(__file__).parent / "golden" / "runtime_config"
CASES = sorted(path.name for path in GOLDEN.iterdir() if path.is_dir())
REGENERATE = os.environ.get("KITDSL_REGENERATE_GOLDENS") == "1"


def run_case(name: str) -> BundleConfig:
    case = GOLDEN / name
    namespace = runpy.run_path(str(case / "system.py"))
    section, index = namespace["target"]
    image = ImageConfig.parse((case / "image.json").read_bytes())
    return bundle_config(namespace["system"], section, index, image)


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 22


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("output", ["config.json", "runtime.json"])
def test_golden(name: str, output: str) -> None:
    bundle = run_case(name)
    actual = bundle.config_json if output == "config.json" else bundle.runtime_json
    expected_path = GOLDEN / name / output
    if REGENERATE:
        expected_path.write_bytes(actual)
    expected = expected_path.read_bytes()
    if actual != expected:
        # Compare as text first: pytest then shows a readable line diff.
        assert actual.decode() == expected.decode()
    assert actual == expected
    # The data and the bytes agree.
    data = bundle.config if output == "config.json" else bundle.runtime
    assert json.loads(actual) == data


# --- the encoder ---------------------------------------------------------------------------------


def test_go_encoding_of_special_characters() -> None:
    text = marshal_indent({"a": ["<&>", "\u2028\u2029", 'é"\\', "\x01\b\f\n\r\t\x7f"], "e": {}})
    assert text == (
        b'{\n    "a": [\n'
        b'        "\\u003c\\u0026\\u003e",\n'
        b'        "\\u2028\\u2029",\n'
        b'        "\xc3\xa9\\"\\\\",\n'
        b'        "\\u0001\\b\\f\\n\\r\\t\x7f"\n'
        b'    ],\n    "e": {}\n}'
    )


# --- image configuration -------------------------------------------------------------------------


def test_image_config_is_tolerant() -> None:
    config = ImageConfig.parse(
        b'{"architecture": "arm64", "os": "linux", "variant": "v8", "rootfs": {"type": "layers"},'
        b' "config": {"entrypoint": ["/init"], "Cmd": null, "Env": null, "Labels": null,'
        b' "ExposedPorts": {"80/tcp": {}}}, "history": []}'
    )
    assert config.platform == "linux/arm64/v8"
    assert config.config.command == ["/init"]
    assert config.config.env is None
    assert config.config.moby_config_label == ""
    assert ImageConfig.parse("{}").config.command == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "is not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"config": {"Env": "PATH=/bin"}}', "config.Env: Input should be a valid list"),
    ],
)
def test_image_config_errors(document: str, message: str) -> None:
    with pytest.raises(ImageConfigError) as exc:
        ImageConfig.parse(document, image="docker.io/library/alpine:3.20")
    assert "docker.io/library/alpine:3.20" in str(exc.value)
    assert message in str(exc.value)


# --- errors --------------------------------------------------------------------------------------


def image_with_label(label: str | None, **config: Any) -> ImageConfig:
    labels = {} if label is None else {MOBY_CONFIG_LABEL: label}
    return ImageConfig.parse({"os": "linux", "config": {"Labels": labels, **config}})


def bundle_of(container: Onboot, label: str | None = None, **system: Any) -> BundleConfig:
    return bundle_config(System(onboot=[container], **system), "onboot", 0, image_with_label(label))


@pytest.mark.parametrize(
    ("label", "message", "where"),
    [
        ("[1, 2]", "expected a mapping of container settings, got a list", "line 1, column 1"),
        ('"text"', "expected a mapping of container settings, got the string 'text'", "line 1"),
        ("  ", "expected a mapping of container settings, got nothing", None),
        ("42", "expected a mapping of container settings, got the number 42", "line 1"),
        ("{name: x}", "'name' cannot be set in the label", "line 1, column 2"),
        ("{image: alpine}", "'image' cannot be set in the label", "line 1, column 2"),
        ("{maskedPath: [/x]}", "unknown key maskedPath (did you mean 'maskedPaths'?)", "line 1"),
        ("{masked_paths: [/x]}", "unknown key masked_paths (did you mean 'maskedPaths'?)", None),
        ("{runtime: {bindNs: {}}}", "unknown key runtime.bindNs (did you mean 'bindNS'?)", None),
        (
            "{capabilities: [CAP_NETADMIN]}",
            "capabilities[0]: unknown capability 'CAP_NETADMIN'",
            None,
        ),
        ("{binds: [/a]}", "binds[0]: bind '/a' must be 'source:destination[:option,option]'", None),
        ("{devices: [{path: /dev/x, type: c, mode: 0666}]}", "devices[0].mode: mode must be", None),
        ("{readonly: maybe}", "readonly: expected a boolean (true or false), got the string", None),
        ("{uid: '1000'}", "uid: '1000' is a string of digits", "line 1, column 7"),
        ("{resources: {memory: {limt: 1}}}", "unknown key resources.memory.limt", None),
        ("{a: [", "YAML syntax error", "line 2, column 1"),
        (
            "cwd: /\nreadonly: [1]\n",
            "readonly: expected a boolean (true or false), got a list",
            "line 2",
        ),
    ],
)
def test_bad_label(label: str, message: str, where: str | None) -> None:
    container = Onboot(name="app", image="example.org/app:1")
    with pytest.raises(ImageConfigError) as exc:
        bundle_of(container, label)
    error = exc.value
    assert error.message.startswith(
        "image example.org/app:1: the org.mobyproject.config label is invalid: "
    )
    assert message in error.message
    assert error.location == container.origin
    assert error.location is not None and error.location.file == __file__
    assert error.hint is not None and "package" in error.hint
    if where is not None:
        assert error.details[0].startswith(f"at {where}")
        assert error.details[0].endswith(" of the label")


def test_bad_label_lists_every_problem() -> None:
    # Unknown keys are all reported, as LinuxKit's schema check does, and so are the values
    # the models reject; the first is the message, the others are details at their place.
    with pytest.raises(ImageConfigError) as exc:
        parse_label("{nett: new, pidd: host}", image="x")
    assert exc.value.message.endswith("unknown key nett (did you mean 'net'?)")
    assert exc.value.details == (
        "at line 1, column 2 of the label",
        "label of x:1:13: unknown key pidd (did you mean 'pid'?)",
    )
    with pytest.raises(ImageConfigError) as exc:
        parse_label("readonly: maybe\nuid: '1000'\n", image="x")
    assert exc.value.message.endswith(
        "readonly: expected a boolean (true or false), got the string 'maybe'"
    )
    assert exc.value.details[0] == "at line 1, column 11 of the label"
    assert exc.value.details[1].startswith("label of x:2:6: uid: '1000' is a string of digits")


def test_label_is_read_as_linuxkit_reads_it() -> None:
    # LinuxKit reads labels with yaml.v3 (YAML 1.2): `yes` is a string, not a boolean.
    with pytest.raises(ImageConfigError) as exc:
        parse_label("{readonly: yes}", image="x")
    assert exc.value.message.endswith(
        "readonly: expected a boolean (true or false), got the string 'yes'"
    )
    assert exc.value.hint is not None and "write true or false" in exc.value.hint
    label = parse_label("{hostname: yes, oomScoreAdj: 0x10, readonly: true}", image="x")
    assert label is not None
    assert (label.hostname, label.oom_score_adj, label.readonly) == ("yes", 16, True)


@pytest.mark.parametrize(
    "label",
    [
        '{"readonly":true,"binds":["/a:/b"],"capabilities.add":["CAP_KILL"],'
        '"devices":[{"path":"/dev/x","type":"c","major":1,"minor":3,"mode":"0666"}]}',
        textwrap.dedent(
            """\
            {
              "readonly": true,
              "binds": ["/a:/b"],
              "capabilities.add": ["CAP_KILL"],
              "devices": [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "mode": "0666"}]
            }
            """
        ),
    ],
    ids=["compact", "indented"],
)
def test_json_label(label: str) -> None:
    location = Location("system.py", 3)
    config = parse_label(label, image="x", location=location)
    assert config is not None
    assert config.readonly is True
    assert config.binds == ["/a:/b"]
    assert config.capabilities_add == ["CAP_KILL"]
    assert config.devices is not None and config.devices[0].mode == 0o666
    assert config.origin == location  # the entry that uses the image


def test_empty_label_is_no_label() -> None:
    assert parse_label("", image="x") is None
    assert parse_label("{}", image="x") is not None


def test_unknown_id_name_from_the_label() -> None:
    container = Onboot(name="app", image="example.org/app:1")
    with pytest.raises(ConfigError) as exc:
        bundle_of(container, '{"uid": "nobody"}')
    assert exc.value.message == (
        "onboot container 'app': uid: cannot find id 'nobody': it is neither a number, 'root', "
        "nor the name of a container"
    )
    assert exc.value.hint == "containers are: app"
    assert exc.value.location == container.origin


@pytest.mark.parametrize("field", ["gid", "additionalGids"])
def test_unknown_gid_name_from_the_label(field: str) -> None:
    value = '["ghost"]' if field == "additionalGids" else '"ghost"'
    with pytest.raises(ConfigError, match="cannot find id 'ghost'"):
        bundle_of(Onboot(name="app", image="a:1"), f'{{"{field}": {value}}}')


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        (
            Mount(destination="/data", source="/host"),
            "mount for destination '/data' is missing type",
        ),
        (Mount(type="tmpfs"), "mount type 'tmpfs' is missing destination"),
        (Mount(type="bind", source="/x"), "mount type 'bind' is missing destination"),
    ],
)
def test_bad_mount(mount: Mount, message: str) -> None:
    container = Onboot(name="app", image="a:1", mounts=[mount])
    with pytest.raises(ConfigError) as exc:
        bundle_of(container)
    assert exc.value.message == f"onboot container 'app': {message}"
    assert exc.value.location == container.origin
    assert exc.value.hint


def test_bad_mount_from_the_label_points_at_the_entry() -> None:
    container = Onboot(name="app", image="a:1")
    with pytest.raises(ConfigError, match="mount for destination '/x' is missing type") as exc:
        bundle_of(container, '{"mounts": [{"destination": "/x"}]}')
    assert exc.value.location == container.origin


def test_all_combined_with_added_capabilities() -> None:
    container = Onboot(name="app", image="a:1", capabilities_add=["CAP_NET_ADMIN"])
    with pytest.raises(ConfigError) as exc:
        bundle_of(container, '{"capabilities": ["all"]}')
    assert "capabilities: 'all' must be the only entry" in exc.value.message
    assert exc.value.location == container.origin


def test_unknown_volume() -> None:
    # System validation catches this first; the runtime configuration checks again so that
    # it never writes a bare volume name as a bind source.
    container = Onboot(name="app", image="a:1", binds=["data:/data"])
    system = System.model_construct(onboot=[container], onshutdown=[], services=[], volumes=[])
    with pytest.raises(ConfigError) as exc:
        bundle_config(system, "onboot", 0, image_with_label(None))
    assert exc.value.message == (
        "onboot container 'app': bind 'data:/data' names volume 'data', which does not exist"
    )
    assert exc.value.location == container.origin


def test_unknown_volume_in_mount_form() -> None:
    container = Onboot(name="app", image="a:1", mounts=[Mount(type="bind", source="data")])
    system = System.model_construct(onboot=[container], onshutdown=[], services=[], volumes=[])
    with pytest.raises(ConfigError, match="mount of 'data' names volume 'data'"):
        bundle_config(system, "onboot", 0, image_with_label(None))


@pytest.mark.parametrize(
    ("rlimit", "message"),
    [
        ("nofiles,1,2", "unknown rlimit 'nofiles' in 'nofiles,1,2'"),
        ("nofile,1", "cannot parse rlimit 'nofile,1'"),
        ("nofile,-1,2", "rlimit 'nofile,-1,2': cannot parse '-1' as uint64"),
        ("nofile,1,18446744073709551616", "cannot parse '18446744073709551616' as uint64"),
    ],
)
def test_bad_rlimit(rlimit: str, message: str) -> None:
    # The models reject these too; a label built without validation must not slip through.
    container = Onboot.model_construct(name="app", image="a:1", rlimits=[rlimit])
    system = System.model_construct(onboot=[container], onshutdown=[], services=[], volumes=[])
    with pytest.raises(ConfigError) as exc:
        bundle_config(system, "onboot", 0, image_with_label(None))
    assert message in exc.value.message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tmpfs", ["/a:b:c"], "cannot parse tmpfs '/a:b:c': too many ':'"),
        ("binds", ["/a"], "cannot parse bind '/a'"),
        ("binds", ["/a:/b:c:d"], "cannot parse bind '/a:/b:c:d'"),
        ("capabilities", ["CAP_FOO"], "unknown capability: CAP_FOO"),
    ],
)
def test_unvalidated_text_is_still_checked(field: str, value: list[str], message: str) -> None:
    container = Onboot.model_construct(name="app", image="a:1", **{field: value})
    system = System.model_construct(onboot=[container], onshutdown=[], services=[], volumes=[])
    with pytest.raises(ConfigError, match=message):
        bundle_config(system, "onboot", 0, image_with_label(None))


def test_target_out_of_range() -> None:
    with pytest.raises(IndexError, match=r"services\[0\]: the system has 0 services entries"):
        bundle_config(System(), "services", 0, image_with_label(None))


# --- the rest of the public API ------------------------------------------------------------------


def test_label_add_lists_are_ignored_with_a_warning() -> None:
    container = Onboot(name="app", image="a:1")
    bundle = bundle_of(container, '{"capabilities.add": ["CAP_KILL"], "binds": ["/a:/a"]}')
    assert "capabilities" not in bundle.config["process"]["capabilities"]
    assert bundle.warnings == (
        "image a:1: the label's 'capabilities.add' is ignored; only a system entry can add to "
        "the label's list",
    )


class Package(ImageProvider):
    @property
    def reference(self) -> str:
        return "example.org/tools:1"


def test_layouts_of_a_whole_system() -> None:
    system = System(
        onboot=[
            Onboot(name="a", image="example.org/tools:1"),
            Onboot(name="b", image="alpine:3.20", readonly=True),
        ],
        onshutdown=[Onshutdown(name="c", image="docker.io/library/alpine:3.20")],
        services=[
            Service(name="d", image=Package()),
            Service(name="e", image="library/alpine:3.20"),
        ],
    )
    configs = {
        "example.org/tools:1": image_with_label('{"readonly": true}'),
        "alpine:3.20": image_with_label(None),
    }
    layouts = bundle_layouts(system, configs)
    assert [(lay.path, lay.readonly, lay.root, lay.extracts_image) for lay in layouts] == [
        ("containers/onboot/000-a", True, "containers/onboot/000-a/rootfs", True),
        ("containers/onboot/001-b", True, "containers/onboot/001-b/rootfs", True),
        ("containers/onshutdown/000-c", False, "containers/onboot/001-b/rootfs", False),
        ("containers/services/d", True, "containers/onboot/000-a/rootfs", False),
        ("containers/services/e", False, "containers/onboot/001-b/rootfs", False),
    ]
    assert [lay.location for lay in layouts] == [
        "onboot[0]",
        "onboot[1]",
        "onshutdown[0]",
        "services[0]",
        "services[1]",
    ]
    assert layouts[3].image == "example.org/tools:1"
    assert layouts[2].image == "docker.io/library/alpine:3.20"
    # bundle_config agrees with bundle_layouts for every container.
    for layout in layouts:
        config = configs["alpine:3.20" if "alpine" in layout.image else "example.org/tools:1"]
        assert bundle_config(system, layout.section, layout.index, config).layout == layout


def test_layouts_need_every_image_config() -> None:
    system = System(onboot=[Onboot(name="a", image="alpine:3.20")])
    with pytest.raises(KeyError, match=re.escape("docker.io/library/alpine:3.20")):
        bundle_layouts(system, {})


def test_volume_in_label_binds_is_left_alone() -> None:
    # LinuxKit only rewrites volume names in the system's own entry, not in image labels.
    system = System(onboot=[Onboot(name="app", image="a:1")], volumes=[Volume(name="data")])
    bundle = bundle_config(system, "onboot", 0, image_with_label('{"binds": ["data:/d"]}'))
    binds = [m for m in bundle.config["mounts"] if m["destination"] == "/d"]
    assert binds == [
        {
            "destination": "/d",
            "type": "bind",
            "source": "data",
            "options": ["rw", "rbind", "rshared"],
        }
    ]
