"""`dlcourse gradescope NN_name`: the autograder.zip to upload to a Gradescope programming assignment.
Runs on the instructor's machine.

    setup.sh                 run once by Gradescope when it builds the image (see the script)
    run_autograder           run for every submission (dlcourse.instructor.gradescope.run)
    settings.json            the assignment, its notebook's name, the grading limits, test visibility
    NN_name.source.ipynb     the instructor's source of this assignment (hidden tests included), nothing else
    files/                   the assignment's public files (what sits next to the student notebook)
    dlcourse-*.whl           the course package, built from this checkout
    torch-requirements.txt   torch and torchvision within the course's ranges (the CPU index)
    requirements.txt         the grading libraries (nbformat, ipykernel) within the course's ranges

Limits: Gradescope's container has 768 MB and half a CPU by default, and stops a run after 10
minutes. The bundle's own limits sit inside those (what the template and grader hold, plus the
kernel's share; a notebook time limit that leaves room for start-up), so a student sees our
message ("stopped at the memory limit") rather than Gradescope's "Killed". An assignment that needs
more says so in its [tool.dlcourse.gradescope] settings, which must match the assignment's
Autograder Settings on Gradescope (README: Gradescope).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import nbformat

from dlcourse import __version__
from dlcourse.instructor.course import Course, CourseError
from dlcourse.instructor.gradescope.results import DEFAULT_VISIBILITY, VISIBILITIES

# Gradescope's defaults (docs: troubleshooting, "Killed" and "timed out")
GRADESCOPE_MEMORY_MB = 768
GRADESCOPE_TIMEOUT_S = 600
GRADESCOPE_CPUS = 0.5
# What the grader process and the kernels' template hold before a kernel allocates anything (torch,
# numpy, IPython imported; measured with the CPU build, see README: Gradescope), and a margin.
BASE_MB = 440
MARGIN_MB = 40
START_S = 60  # Python and torch start-up on half a CPU, before the first cell runs
RESULT_S = 20  # after our alarm: time left to write results.json before Gradescope stops the run
GRADING_PACKAGES = ("nbformat", "ipykernel")  # what the grader and its kernel import, besides the core
TORCH_PACKAGES = ("torch", "torchvision")


@dataclass
class GradescopeSettings:
    """One assignment's Gradescope settings: [tool.dlcourse.gradescope] and, per assignment,
    [tool.dlcourse.gradescope.NN_name] in pyproject.toml; command-line options win."""

    memory_mb: int = GRADESCOPE_MEMORY_MB  # the container's memory on Gradescope
    timeout_s: int = GRADESCOPE_TIMEOUT_S  # Gradescope's timeout for the whole run
    cell_timeout_s: float = 120.0
    visibility: dict = field(default_factory=lambda: dict(DEFAULT_VISIBILITY))

    def limits(self) -> dict:
        kernel_mb = self.memory_mb - BASE_MB - MARGIN_MB
        if kernel_mb < 128:
            raise CourseError(f"a Gradescope container of {self.memory_mb} MB leaves {kernel_mb} MB for a notebook: "
                              f"set memory_mb to at least {BASE_MB + MARGIN_MB + 128}")
        timeout = self.timeout_s - START_S - RESULT_S
        if timeout < 60:
            raise CourseError(f"a Gradescope timeout of {self.timeout_s} s leaves {timeout} s for a notebook: "
                              f"set timeout_s to at least {START_S + RESULT_S + 60}")
        return {"memory_mb": kernel_mb, "timeout_s": float(timeout), "cell_timeout_s": min(self.cell_timeout_s, timeout),
                "alarm_s": self.timeout_s - RESULT_S, "threads": 1,
                "gradescope": {"memory_mb": self.memory_mb, "timeout_s": self.timeout_s}}


def read_settings(course: Course, assignment: str, **overrides) -> GradescopeSettings:
    try:
        with open(course.root / "pyproject.toml", "rb") as f:
            config = tomllib.load(f).get("tool", {}).get("dlcourse", {}).get("gradescope", {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CourseError(f"{course.root / 'pyproject.toml'}: {error}") from None
    merged = {k: v for k, v in config.items() if not isinstance(v, dict) or k == "visibility"}
    for key, value in config.get(assignment, {}).items():
        merged[key] = {**merged.get(key, {}), **value} if key == "visibility" else value
    for key, value in overrides.items():
        if value is not None:
            merged[key] = {**merged.get(key, {}), **value} if key == "visibility" else value
    known = set(GradescopeSettings.__dataclass_fields__)
    unknown = sorted(set(merged) - known)
    if unknown:
        raise CourseError(f"[tool.dlcourse.gradescope]: unknown setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    settings = GradescopeSettings(**{**merged, "visibility": {**DEFAULT_VISIBILITY, **merged.get("visibility", {})}})
    for kind, value in settings.visibility.items():
        if kind not in DEFAULT_VISIBILITY or value not in VISIBILITIES:
            raise CourseError(f"[tool.dlcourse.gradescope] visibility {kind} = {value!r}: use keys visible/hidden "
                              f"and values {', '.join(VISIBILITIES)}")
    return settings


def requirements(course: Course) -> tuple[list[str], list[str]]:
    """(torch lines, grading lines) from pyproject.toml's ranges. torch and torchvision get an upper
    bound too: the version installed here, the newest the course was checked with."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement
    from packaging.version import Version

    with open(course.root / "pyproject.toml", "rb") as f:
        project = tomllib.load(f).get("project", {})
    found = {Requirement(r).name.lower(): Requirement(r)
             for r in [*project.get("dependencies", []), *project.get("optional-dependencies", {}).get("instructor", [])]}
    torch_lines = []
    for name in TORCH_PACKAGES:
        spec = str(found[name].specifier) if name in found else ""
        try:
            installed = Version(version(name)).public
            spec = ",".join(s for s in (spec, f"<={installed}") if s)
        except PackageNotFoundError:
            pass
        torch_lines.append(f"{name}{spec}")
    grading = [f"{name}{found[name].specifier}" if name in found else name for name in GRADING_PACKAGES]
    grading.append('tomli>=1.1; python_version < "3.11"')
    return torch_lines, grading


def build_wheel(course: Course, folder: Path) -> Path:
    """The course package as a wheel, built from this checkout (hatchling, without build isolation
    when it is installed: no download)."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(folder), str(course.root)]
    try:
        import hatchling  # noqa: F401

        command.insert(5, "--no-build-isolation")
    except ImportError:
        pass
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(folder.glob("dlcourse-*.whl"))
    if done.returncode != 0 or not wheels:
        raise CourseError(f"building the course wheel failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    return wheels[0]


def build_bundle(course: Course, assignment: str, output: Path, settings: GradescopeSettings | None = None,
                 wheel: Path | None = None) -> Path:
    """Write autograder.zip for `assignment` to `output`; returns its path."""
    from dlcourse.instructor.source import read_source
    from dlcourse.instructor.cells import score_columns
    from dlcourse.instructor.grading.batch import public_files

    [assignment] = course.resolve([assignment])
    settings = settings or read_settings(course, assignment)
    source = read_source(course.source_path(assignment))
    torch_lines, grading_lines = requirements(course)
    files = public_files(course, assignment)
    source_name = f"{assignment}.source.ipynb"
    data = {
        "assignment": assignment, "notebook": f"{assignment}.ipynb", "source": source_name,
        "dlcourse_version": __version__, "limits": settings.limits(), "visibility": settings.visibility,
        "points": sum(c.max_points for c in score_columns(source) if c.kind == "tests"),
        "manual_points": sum(c.max_points for c in score_columns(source) if c.kind == "answer"),
        "files": sorted(files), "settings": asdict(settings),
        # cover /autograder in the kernel's mount namespace too (where the container allows one); the
        # folders are mode 700 either way. False only for the rehearsal that checks the modes alone.
        "cover_root": True,
    }
    scripts = resources.files("dlcourse.instructor.gradescope")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dlcourse-gradescope-") as scratch:
        wheel = wheel or build_wheel(course, Path(scratch))
        temporary = output.with_name(output.name + ".part")
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in ("setup.sh", "run_autograder"):
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o100755 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, scripts.joinpath(name).read_text(encoding="utf-8"))
            zf.writestr("settings.json", json.dumps(data, indent=2) + "\n")
            zf.writestr("torch-requirements.txt", "\n".join(torch_lines) + "\n")
            zf.writestr("requirements.txt", "\n".join(grading_lines) + "\n")
            zf.writestr(source_name, nbformat.writes(source))
            for name, path in files.items():
                zf.write(path, f"files/{name}")
            zf.write(wheel, wheel.name)
        temporary.replace(output)
    return output


def extract(bundle: Path, root: Path) -> Path:
    """Lay the bundle out as Gradescope does under `root` (for a rehearsal): source/ holds the zip's
    contents, run_autograder a copy at the top; submission/ and results/ are empty. Returns `root`."""
    source = root / "source"
    source.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(bundle) as zf:
        for info in zf.infolist():
            target = source / info.filename
            if info.is_dir() or ".." in Path(info.filename).parts:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
    shutil.copy2(source / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir(exist_ok=True)
    (root / "results").mkdir(exist_ok=True)
    return root
