"""Loading system.py files: isolation, project imports, variants, and errors at the user's line."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from kitdsl.errors import ConfigError, UserCodeError
from kitdsl.load import load_system
from kitdsl.load.isolation import _resolve
from kitdsl.load.pyfile import SystemSpec, load_system_file, project_root

Project = Callable[[dict[str, str]], Path]

BASE = textwrap.dedent(
    """
    from kitdsl import Service, System

    getty = Service(name="getty", image="linuxkit/getty:v1")
    system = System(services=[getty])
    """
).lstrip()


def test_project_root_is_importable(project: Project) -> None:
    root = project(
        {
            "systems/common/base.py": BASE,
            "systems/edge.py": """
                from kitdsl import Service
                from systems.common import base

                system = base.system.extend(services=[Service(name="web", image="nginx:1")])
            """,
        }
    )
    system = load_system_file(str(root / "systems/edge.py"))
    assert [s.name for s in system.services] == ["getty", "web"]


def test_no_leak_of_modules_or_path_between_loads(project: Project) -> None:
    root = project(
        {
            "systems/common/base.py": BASE,
            "systems/a.py": "from systems.common import base\nsystem = base.system\n",
        }
    )
    modules_before = set(sys.modules)
    path_before = list(sys.path)
    load_system_file(str(root / "systems/a.py"))
    assert sys.path == path_before
    assert set(sys.modules) - modules_before == set()
    # An edit between loads is seen: nothing was cached.
    (root / "systems/common/base.py").write_text(BASE.replace("getty:v1", "getty:v2"))
    again = load_system_file(str(root / "systems/a.py"))
    assert again["getty"].image == "linuxkit/getty:v2"


def test_two_projects_with_the_same_module_names(tmp_path: Path) -> None:
    for name in ("one", "two"):
        folder = tmp_path / name
        (folder / "systems").mkdir(parents=True)
        (folder / "pyproject.toml").write_text("")
        (folder / "systems/shared.py").write_text(
            f"from kitdsl import Service\nsvc = Service(name='{name}', image='x:1')\n"
        )
        (folder / "systems/main.py").write_text(
            "from kitdsl import System\nfrom systems.shared import svc\n"
            "system = System(services=[svc])\n"
        )
    first = load_system_file(str(tmp_path / "one/systems/main.py"))
    second = load_system_file(str(tmp_path / "two/systems/main.py"))
    assert first.services[0].name == "one"
    assert second.services[0].name == "two"


def test_variants_by_name(project: Project) -> None:
    root = project(
        {
            "sys.py": BASE + "\ndebug = system.override('getty', env=['INSECURE=true'])\n",
        }
    )
    assert load_system_file(f"{root}/sys.py:debug")["getty"].env == ["INSECURE=true"]
    assert load_system_file(f"{root}/sys.py")["getty"].env is None
    assert SystemSpec.parse("a/b.py:debug") == SystemSpec(Path("a/b.py"), "debug")
    assert SystemSpec.parse("a/b.py") == SystemSpec(Path("a/b.py"), "system")


def test_file_that_defines_no_system(project: Project) -> None:
    root = project({"empty.py": "x = 1\n", "other.py": BASE.replace("system =", "prod =")})
    with pytest.raises(ConfigError, match="defines no 'system'") as exc:
        load_system_file(str(root / "empty.py"))
    assert exc.value.hint == "assign a kitdsl.System to a variable named 'system'"
    with pytest.raises(ConfigError) as exc:
        load_system_file(str(root / "other.py"))
    assert exc.value.hint is not None and "other.py:prod" in exc.value.hint


def test_system_of_the_wrong_type(project: Project) -> None:
    root = project({"s.py": "system = {'services': []}\n"})
    with pytest.raises(ConfigError, match=r"'system' in .* is a dict, not a kitdsl System"):
        load_system_file(str(root / "s.py"))


def test_exception_in_user_module_points_at_the_raising_line(project: Project) -> None:
    root = project(
        {
            "systems/helper.py": "def make():\n    return 1 / 0\n",
            "s.py": "from systems.helper import make\n\nsystem = make()\n",
        }
    )
    with pytest.raises(UserCodeError) as exc:
        load_system_file(str(root / "s.py"))
    assert exc.value.message == "ZeroDivisionError: division by zero"
    assert exc.value.location is not None
    assert exc.value.location.file.endswith("systems/helper.py")
    assert exc.value.location.line == 2
    assert exc.value.exit_code == 4


def test_invalid_model_points_at_the_construction_line(project: Project) -> None:
    root = project(
        {
            "s.py": """
                from kitdsl import Service, System

                system = System(
                    services=[
                        Service(name="web", image="nginx:1",
                                capabilities=["CAP_NET_ADMN"]),
                    ],
                )
            """
        }
    )
    with pytest.raises(ConfigError) as exc:
        load_system_file(str(root / "s.py"))
    assert exc.value.location is not None and exc.value.location.line == 5
    assert exc.value.message == "invalid Service"
    assert "did you mean 'CAP_NET_ADMIN'" in exc.value.details[0]


def test_duplicate_names_across_modules_name_both_files(project: Project) -> None:
    root = project(
        {
            "systems/common/base.py": BASE,
            "s.py": """
                from kitdsl import Service
                from systems.common import base

                system = base.system.extend(services=[Service(name="getty", image="x:1")])
            """,
        }
    )
    with pytest.raises(ConfigError) as exc:
        load_system_file(str(root / "s.py"))
    assert exc.value.location is not None and exc.value.location.line == 4
    assert "systems/common/base.py:3" in exc.value.details[0]


def test_import_cycle_between_user_modules(project: Project) -> None:
    root = project(
        {
            "systems/a.py": "from systems.b import B\nA = 1\n",
            "systems/b.py": "from systems.a import A\nB = 2\n",
            "s.py": "import systems.a\n",
        }
    )
    with pytest.raises(ConfigError) as exc:
        load_system_file(str(root / "s.py"))
    assert (
        exc.value.message
        == "import cycle between your modules: systems.a -> systems.b -> systems.a"
    )
    assert exc.value.location is not None
    assert exc.value.location.file.endswith("systems/b.py")


def test_syntax_error_and_missing_module(project: Project) -> None:
    root = project({"bad.py": "system = (\n", "missing.py": "from nowhere.nope import x\n"})
    with pytest.raises(UserCodeError, match="syntax error") as exc:
        load_system_file(str(root / "bad.py"))
    assert exc.value.location is not None and exc.value.location.line == 1
    with pytest.raises(UserCodeError, match="No module named 'nowhere'") as exc:
        load_system_file(str(root / "missing.py"))
    assert exc.value.hint is not None and "project root" in exc.value.hint


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_system_file("/nonexistent/system.py")


def test_project_root_markers(tmp_path: Path) -> None:
    (tmp_path / "repo/systems/deep").mkdir(parents=True)
    (tmp_path / "repo/.git").mkdir()
    file = tmp_path / "repo/systems/deep/x.py"
    file.write_text("")
    assert project_root(file) == (tmp_path / "repo").resolve()


def test_several_files_merge(project: Project) -> None:
    root = project(
        {
            "a.py": BASE,
            "b.py": "from kitdsl import Service, System\n"
            "system = System(services=[Service(name='web', image='nginx:1')])\n",
        }
    )
    merged = load_system([str(root / "a.py"), str(root / "b.py")])
    assert [s.name for s in merged.services] == ["getty", "web"]


def test_yaml_files_given_together_share_volumes_and_ids(project: Project) -> None:
    root = project(
        {
            "a.yml": """
                volumes:
                  - name: data
                services:
                  - name: db
                    image: postgres:16
            """,
            "b.yml": """
                services:
                  - name: app
                    image: app:1
                    binds: ["data:/data"]
                    uid: db
            """,
            "c.py": BASE,
            "d.yml": """
                services:
                  - name: shell
                    image: alpine:3
                    uid: getty
            """,
        }
    )
    merged = load_system([str(root / n) for n in ("a.yml", "b.yml", "c.py", "d.yml")])
    assert [s.name for s in merged.services] == ["db", "app", "getty", "shell"]
    assert merged.resolve_id("getty") == 102
    assert merged["app"].origin is not None and merged["app"].origin.file.endswith("b.yml")


def test_project_folders_named_like_libraries_do_not_hide_them(project: Project) -> None:
    root = project(
        {
            "json/data.txt": "not python\n",
            "yaml/values.txt": "not python\n",
            "systems/x.py": """
                import json

                import yaml
                from kitdsl import Service, System

                env = [f"A={json.dumps(1)}", f"B={yaml.safe_load('2')}"]
                system = System(services=[Service(name="a", image="x:1", env=env)])
            """,
        }
    )
    assert load_system_file(str(root / "systems/x.py"))["a"].env == ["A=1", "B=2"]


def test_virtual_environment_in_the_project_is_not_user_code(project: Project) -> None:
    root = project(
        {
            ".venv/lib/python3.11/site-packages/vendorlib.py": (
                "def boom():\n    raise ValueError('x')\n"
            ),
            "s.py": """
                import sys
                sys.path.append(__file__.rsplit("/", 1)[0] + "/.venv/lib/python3.11/site-packages")
                import vendorlib
                vendorlib.boom()
            """,
        }
    )
    with pytest.raises(UserCodeError) as exc:
        load_system_file(str(root / "s.py"))
    assert exc.value.location is not None
    assert exc.value.location.file.endswith("s.py") and exc.value.location.line == 4
    sys.modules.pop("vendorlib", None)


def test_sys_exit_in_a_system_file(project: Project) -> None:
    root = project({"s.py": "import sys\nsys.exit(0)\n"})
    with pytest.raises(UserCodeError, match=r"called sys.exit\(0\)") as exc:
        load_system_file(str(root / "s.py"))
    assert exc.value.location is not None and exc.value.location.line == 2


def test_relative_imports_in_the_entry_file(project: Project) -> None:
    root = project(
        {
            "systems/__init__.py": "",
            "systems/common/__init__.py": "",
            "systems/common/base.py": BASE,
            "systems/edge.py": "from .common import base\nsystem = base.system\n",
        }
    )
    assert load_system_file(str(root / "systems/edge.py"))["getty"].image == "linuxkit/getty:v1"
    assert "systems" not in sys.modules or not str(
        getattr(sys.modules["systems"], "__file__", "")
    ).startswith(str(root))


def test_paths_resolved_a_folder_at_a_time_match_full_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What tells the project's modules from libraries resolves every module's path; folders
    # are resolved once per load, with the same answers as resolving each path in full.
    real = tmp_path / "real"
    (real / "pkg").mkdir(parents=True)
    (real / "pkg" / "mod.py").write_text("")
    (tmp_path / "linked").symlink_to(real)
    (tmp_path / "alias.py").symlink_to(real / "pkg" / "mod.py")
    monkeypatch.chdir(tmp_path)
    paths = [
        tmp_path / "linked" / "pkg" / "mod.py",
        tmp_path / "linked" / "pkg",
        str(tmp_path / "linked" / "pkg") + "/",
        tmp_path / "linked" / "pkg" / "..",
        tmp_path / "linked" / ".." / "real" / "pkg" / "mod.py",
        tmp_path / "alias.py",
        "linked/pkg/mod.py",
        "alias.py",
        tmp_path / "missing" / "x.py",
    ]
    folders: dict[str, Path] = {}
    for path in paths:
        assert _resolve(path, folders) == Path(path).resolve(), path
    assert folders  # shared between the paths
