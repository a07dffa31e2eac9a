"""``kitdsl inspect``'s text and JSON: the export writer's YAML, with origins when asked."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from kitdsl import File, Kernel, Onboot, Service, System, Volume
from kitdsl.dsl.base import defined_at
from kitdsl.errors import Location
from kitdsl.load import _yamlnodes as yn
from kitdsl.load.describe import LIST_SECTIONS, explain_data, system_data, to_json, to_text
from kitdsl.load.linuxkit_yaml import dump_linuxkit_yaml, parse_linuxkit_yaml
from tests import strategies
from tests.strategies import systems

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DRAWN_IN = Path(strategies.__file__).parent  # where drawn systems' files are defined
HERE = Path(__file__).parent


@PROPERTY
@given(systems())
def test_text_is_the_export_writers_yaml_with_every_section(system: System) -> None:
    text = to_text(system, base=DRAWN_IN)
    assert text == yn.dump(system_data(system, base=DRAWN_IN))
    assert parse_linuxkit_yaml(text) == system
    if all(getattr(system, section) for section in ("init", *LIST_SECTIONS)):
        assert text == dump_linuxkit_yaml(system, base=DRAWN_IN)


@PROPERTY
@given(systems())
def test_explained_text_is_the_same_yaml_with_comments(system: System) -> None:
    text = to_text(system, explain=True, base=DRAWN_IN)
    assert parse_linuxkit_yaml(text) == system
    # Comments name the kernel at the left margin, and list items two columns in, where
    # nothing else starts with "#"; drawn systems override no field.
    plain = [line for line in text.splitlines() if not re.match("# kernel: |  # ", line)]
    assert "\n".join(plain) + "\n" == to_text(system, base=DRAWN_IN)


def test_empty_sections_are_shown() -> None:
    assert to_text(System()) == textwrap.dedent(
        """\
        init: []
        onboot: []
        onshutdown: []
        services: []
        files: []
        volumes: []
        """
    )
    assert to_text(System(kernel=Kernel())).startswith("kernel: {}\ninit: []\n")
    assert list(json.loads(to_json(System()))) == [
        *("init", "onboot", "onshutdown", "services", "files", "volumes"),
    ]


def _overridden() -> tuple[System, Location, Location]:
    with defined_at(Location(str(HERE / "base.py"), 3)):
        getty = Service(name="getty", image="linuxkit/getty:v1", env=["A=1"])
        motd = File(path="etc/motd", contents="one\ntwo\n", mode=0o644)
        system = System(
            kernel=Kernel(image="linuxkit/kernel:6.6.71"),
            onboot=[Onboot(name="sysctl", image="linuxkit/sysctl:v1")],
            services=[getty],
            files=[motd],
            volumes=[Volume(name="data")],
        )
    product = Location(str(HERE / "product.py"), 7)
    with defined_at(product):
        system = system.override("getty", env=["A=2"], readonly=True).replace(
            files=[motd.replace(contents="three\n")]
        )
    return system, Location(str(HERE / "base.py"), 3), product


def test_explain_comments_name_definitions_and_overrides() -> None:
    system, base, product = _overridden()
    assert to_text(system, explain=True) == textwrap.dedent(
        f"""\
        # kernel: {base}
        kernel:
          image: linuxkit/kernel:6.6.71
        init: []
        onboot:
          # sysctl: {base}
          - name: sysctl
            image: linuxkit/sysctl:v1
        onshutdown: []
        services:
          # getty: {base}
          - name: getty
            image: linuxkit/getty:v1
            env:  # set at {product}
              - A=2
            readonly: true  # set at {product}
        files:
          # etc/motd: {base}
          - path: etc/motd
            contents: |  # set at {product}
              three
            mode: "0644"
        volumes:
          # data: {base}
          - name: data
        """
    )
    assert parse_linuxkit_yaml(to_text(system, explain=True)) == system


def test_json_explain_names_origins_and_overrides() -> None:
    system, base, product = _overridden()
    data = json.loads(to_json(system, explain=True))
    assert data["services"] == [
        {"name": "getty", "image": "linuxkit/getty:v1", "env": ["A=2"], "readonly": True}
    ]
    assert data["explain"] == {
        "kernel": {"origin": str(base)},
        "onboot/sysctl": {"origin": str(base)},
        "services/getty": {
            "origin": str(base),
            "overrides": {"env": str(product), "readonly": str(product)},
        },
        "files/etc/motd": {"origin": str(base), "overrides": {"contents": str(product)}},
        "volumes/data": {"origin": str(base)},
    }


def test_files_with_one_path_each_keep_their_origin() -> None:
    files = []
    for line, path in enumerate(["etc/a", "etc/a#2", "etc/a", "etc/a"], start=1):
        with defined_at(Location("/p/s.py", line)):
            files.append(File(path=path, contents=str(line)))
    explained = explain_data(System(files=files))
    assert {key: value["origin"] for key, value in explained.items()} == {
        "files/etc/a": "/p/s.py:1",
        "files/etc/a#2": "/p/s.py:2",  # a path that looks like a numbered key
        "files/etc/a#3": "/p/s.py:3",
        "files/etc/a#4": "/p/s.py:4",
    }


def test_sources_are_shown_from_the_folder_of_the_reader(tmp_path: Path) -> None:
    with defined_at(Location(str(tmp_path / "systems/common/ssh.py"), 2)):
        system = System(files=[File(path="root/.ssh/authorized_keys", source="../keys/k.pub")])
    assert "source: systems/keys/k.pub\n" in to_text(system, base=tmp_path)
    data = json.loads(to_json(system, base=tmp_path / "systems"))
    assert data["files"][0]["source"] == "keys/k.pub"
