"""Smoke-test the container image without a Docker engine.

Runs the Dockerfile's build-stage commands (ENV, WORKDIR, COPY, RUN) in a scratch directory
instead of an image: the image's own paths (/opt, /app, /src) are relocated under that directory,
the base image's interpreter is this machine's Python, and `pip` is a throw-away virtual
environment's. Only package installs (`pip`, `uv`) may run; the final stage's account creation
(`groupadd`, `useradd`) is checked but never run on this machine. Then it reproduces the final
stage (COPY of the venv and the reference data, ENV, WORKDIR) and starts, from the resulting
environment and with the final stage's ENV only:

- the producer, as the image's CMD plus ``--sink stdout --max-messages 5``; every line it
  prints to stdout must be a JSON reading in the wire format;
- the operator, as the Helm chart's command (charts/sensorsim/templates/operator/deployment.yaml),
  for a short real start: it must serve /healthz and /metrics on the ports the chart passes in
  its environment (against an API server that is not there) and stop cleanly on SIGTERM.

It also checks what the final stage must not contain (pip in the venv) and that the venv
imports nothing from the source tree.

Usage::

    python scripts/image_smoke.py [--keep] [--no-cache] [--python /path/to/python3.11]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile"
CHART_DIR = REPO_ROOT / "charts" / "sensorsim"
OPERATOR_DEPLOYMENT = CHART_DIR / "templates" / "operator" / "deployment.yaml"
# Directories the image owns; paths under them are relocated into the scratch directory.
IMAGE_PATHS = ("/opt", "/app", "/src")
PRODUCER_ARGS = ("--sink", "stdout", "--max-messages", "5")
# What RUN may do. The build stage's commands run here for real, with `pip` and the venv
# redirected into the scratch directory, so they must be package installs; the final stage's
# commands (the image's user account) change the system and are never run here.
BUILD_STAGE_COMMANDS = frozenset({"pip", "uv"})
FINAL_STAGE_COMMANDS = frozenset({"groupadd", "useradd"})
TIMEOUT_SECONDS = 900


class SmokeError(RuntimeError):
    """The image would not build or start; the message says which step and why."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def instructions(text: str) -> Iterator[Instruction]:
    """Dockerfile instructions with line continuations joined and comment lines dropped."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # Docker drops comment lines inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = joined.partition(" ")
        yield Instruction(keyword.upper(), arguments.strip(), start)
    if pending:
        raise SmokeError("Dockerfile ends inside a continued instruction")


def stages(text: str) -> list[Stage]:
    """The Dockerfile's stages in order."""
    found: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(base=words[0], name=name))
        elif found:
            found[-1].instructions.append(instruction)
    return found


def parse_env(arguments: str, env: Mapping[str, str]) -> dict[str, str]:
    """``ENV k=v k2="v 2"`` with ${VAR}/$VAR expanded from ``env`` (the values set so far)."""
    result: dict[str, str] = {}
    for word in shlex.split(arguments):
        key, sep, value = word.partition("=")
        if not sep:
            raise SmokeError(f"ENV {arguments!r}: use the key=value form")
        result[key] = expand(value, {**env, **result})
    return result


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand ${VAR} and $VAR like Docker does in ENV, WORKDIR and COPY."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


class Relocator:
    """Maps the image's absolute paths to the scratch directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        alternatives = "|".join(re.escape(prefix) for prefix in IMAGE_PATHS)
        self._pattern = re.compile(rf"(?<![\w/.-])({alternatives})(?=/|\b|$)")

    def __call__(self, text: str) -> str:
        return self._pattern.sub(lambda m: f"{self.root}{m.group(1)}", text)


@dataclass
class Runner:
    """Executes the supported instructions of a stage in the scratch directory."""

    root: Path
    env: dict[str, str]
    host_python: str
    use_cache: bool
    execute_runs: bool = True
    workdir: Path | None = None

    def relocate(self, text: str) -> str:
        return Relocator(self.root)(text)

    def run_stage(self, stage: Stage, build: Runner | None = None) -> None:
        for instruction in stage.instructions:
            handler = getattr(self, f"_do_{instruction.keyword.lower()}", None)
            if handler is None:
                raise SmokeError(
                    f"Dockerfile:{instruction.line}: {instruction.keyword} is not supported"
                )
            handler(instruction, build)

    def _do_env(self, instruction: Instruction, _build: Runner | None) -> None:
        # Relocate the literal text first, then expand: values from the host (PATH) stay as-is.
        for key, value in parse_env(self.relocate(instruction.arguments), self.env).items():
            if key == "UV_PYTHON":
                self.env[key] = self.host_python  # the base image's interpreter is this machine's
            elif key == "UV_NO_CACHE" and self.use_cache:
                continue  # a smoke test may reuse uv's download cache; nothing else changes
            else:
                self.env[key] = value

    def _do_workdir(self, instruction: Instruction, _build: Runner | None) -> None:
        path = Path(expand(self.relocate(instruction.arguments), self.env))
        path.mkdir(parents=True, exist_ok=True)
        self.workdir = path

    def _do_copy(self, instruction: Instruction, build: Runner | None) -> None:
        words = shlex.split(instruction.arguments)
        source_stage = None
        while words and words[0].startswith("--"):
            flag = words.pop(0)
            if flag.startswith("--from="):
                source_stage = flag.removeprefix("--from=")
        *sources, destination = words
        target = Path(self.relocate(destination))
        if not target.is_absolute():
            if self.workdir is None:
                raise SmokeError(f"Dockerfile:{instruction.line}: relative COPY without WORKDIR")
            target = self.workdir / destination
        for source in sources:
            if source_stage is not None:
                origin = Path(self.relocate(source))
                if build is None or not origin.exists():
                    raise SmokeError(f"Dockerfile:{instruction.line}: {source} not built")
                if origin.resolve() != target.resolve():
                    _copy(origin, target, destination.endswith("/"))
                continue
            _copy(REPO_ROOT / source, target, destination.endswith("/") or len(sources) > 1)

    def _do_run(self, instruction: Instruction, _build: Runner | None) -> None:
        steps = [step.strip() for step in instruction.arguments.split("&&")]
        if not self.execute_runs:
            # The final stage's commands change the system (accounts); never run them here.
            unknown = [step for step in steps if step.split()[0] not in FINAL_STAGE_COMMANDS]
            if unknown:
                raise SmokeError(
                    f"Dockerfile:{instruction.line}: the smoke test cannot reproduce {unknown}; "
                    f"the final stage may only run {sorted(FINAL_STAGE_COMMANDS)}"
                )
            print(f"  (skipped on this machine) RUN {instruction.arguments}", file=sys.stderr)
            return
        unsafe = [step for step in steps if step.split()[0] not in BUILD_STAGE_COMMANDS]
        if unsafe:
            raise SmokeError(
                f"Dockerfile:{instruction.line}: {unsafe} would run on this machine, not in a "
                f"container; the build stage may only run {sorted(BUILD_STAGE_COMMANDS)}"
            )
        command = self.relocate(instruction.arguments)
        print(f"+ RUN {command}", file=sys.stderr, flush=True)
        result = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=self.workdir or self.root,
            env=self.env,
            check=False,
            timeout=TIMEOUT_SECONDS,
        )
        if result.returncode != 0:
            raise SmokeError(f"Dockerfile:{instruction.line}: RUN failed ({result.returncode})")

    def _do_arg(self, instruction: Instruction, _build: Runner | None) -> None:
        name, _, default = instruction.arguments.partition("=")
        self.env.setdefault(name.strip(), default.strip().strip('"'))

    def _ignore(self, _instruction: Instruction, _build: Runner | None) -> None:
        """Metadata only (labels, ports, the user and the command are checked elsewhere)."""

    _do_label = _do_expose = _do_user = _do_cmd = _ignore


def _copy(source: Path, target: Path, into_directory: bool) -> None:
    if not source.exists():
        raise SmokeError(f"COPY source {source} does not exist")
    if source.is_dir():
        shutil.copytree(
            source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
        return
    destination = target / source.name if into_directory else target
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination)


def final_command(stage: Stage) -> list[str]:
    """The image's CMD (exec form)."""
    for instruction in stage.instructions:
        if instruction.keyword == "CMD":
            command = json.loads(instruction.arguments)
            if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
                raise SmokeError("CMD must be in exec form: a JSON list of strings")
            return command
    raise SmokeError("the final stage has no CMD")


def chart_operator_command() -> list[str]:
    """The operator command the Helm chart runs (a literal list in the Deployment template)."""
    match = re.search(r"^\s*command:\s*(\[.*\])\s*$", OPERATOR_DEPLOYMENT.read_text(), re.M)
    if match is None:
        raise SmokeError(f"no literal `command: [...]` in {OPERATOR_DEPLOYMENT}")
    command = json.loads(match.group(1))
    if not isinstance(command, list):
        raise SmokeError("the chart's operator command is not a list")
    return [str(part) for part in command]


def check_readings(stdout: str) -> int:
    """Count the JSON readings on the producer's stdout; fail on anything else."""
    count = 0
    for line in stdout.splitlines():
        if not line.strip():
            continue
        body = json.loads(line)
        if not {"machine_id", "timestamp", "readings"} <= set(body):
            raise SmokeError(f"the producer printed a record without the wire format: {line}")
        count += 1
    return count


_UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:%d", insecure-skip-tls-verify: true}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
            return int(response.status)
    except OSError:
        return None


def start_operator(command: list[str], cwd: Path, env: dict[str, str], root: Path) -> None:
    """A short real start: the operator comes up (kopf, the handlers, /healthz and /metrics on
    the chart's env ports) against an API server that is not there, then stops on SIGTERM."""
    health, metrics = _free_port(), _free_port()
    kubeconfig = root / "unreachable.kubeconfig"
    kubeconfig.write_text(_UNREACHABLE_KUBECONFIG % _free_port())
    operator_env = {
        **env,
        "KUBECONFIG": str(kubeconfig),
        "OPERATOR_HEALTH_PORT": str(health),
        "OPERATOR_METRICS_PORT": str(metrics),
        "OPERATOR_LOG_FORMAT": "plain",
    }
    print(f"+ {shlex.join(command)}  (short start)", file=sys.stderr, flush=True)
    log = root / "operator.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=operator_env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SmokeError(f"the operator exited ({process.returncode}):\n{log.read_text()}")
            if (
                _http_status(f"http://127.0.0.1:{health}/healthz") == 200
                and _http_status(f"http://127.0.0.1:{metrics}/metrics") == 200
            ):
                break
            time.sleep(0.5)
        else:
            raise SmokeError(f"the operator served no /healthz and /metrics:\n{log.read_text()}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise SmokeError("the operator did not stop within 30 s of SIGTERM") from None
    if code != 0:
        raise SmokeError(f"the operator exited with {code} after SIGTERM:\n{log.read_text()}")
    print("operator: started (/healthz, /metrics) and stopped on SIGTERM", file=sys.stderr)


def base_python() -> str:
    """The interpreter the project's venv is built on (this machine's 'base image' Python)."""
    return str(getattr(sys, "_base_executable", sys.executable))


def smoke(root: Path, host_python: str, use_cache: bool) -> None:
    all_stages = stages(DOCKERFILE.read_text())
    if len(all_stages) < 2:
        raise SmokeError("expected a multi-stage Dockerfile (a build stage and a final stage)")
    build_stage, final_stage = all_stages[0], all_stages[-1]

    # `pip` of the base image: a throw-away venv's, so nothing is installed on this machine.
    tools = root / "base-image-tools"
    subprocess.run([host_python, "-m", "venv", str(tools)], check=True, timeout=TIMEOUT_SECONDS)
    # The build sees this machine's network settings (proxies, CA bundles, package indexes),
    # as `docker build` would see the builder's, but nothing that changes which Python or which
    # environment is used.
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "CONDA", "UV_PYTHON", "UV_PROJECT"))
    }
    base_env.update(
        PATH=f"{tools / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        HOME=str(root / "home"),
        LANG="C.UTF-8",
    )
    if use_cache and "UV_CACHE_DIR" in os.environ:
        base_env["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
    elif use_cache:
        base_env["UV_CACHE_DIR"] = str(Path.home() / ".cache" / "uv")

    build = Runner(root=root, env=dict(base_env), host_python=host_python, use_cache=use_cache)
    build.run_stage(build_stage)

    final = Runner(
        root=root,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
        host_python=host_python,
        use_cache=use_cache,
        execute_runs=False,
    )
    final.run_stage(final_stage, build=build)
    venv = Path(final.env["VIRTUAL_ENV"])
    if (venv / "bin" / "pip").exists():
        raise SmokeError(f"the final stage's venv contains pip ({venv / 'bin' / 'pip'})")
    data_file = Path(final.env.get("SENSOR_DATA_FILE", ""))
    if not data_file.is_file():
        raise SmokeError(f"SENSOR_DATA_FILE={data_file} is not in the final stage")
    run_env = {**final.env, "HOME": "/nonexistent"}
    cwd = final.workdir or root

    producer = [*final_command(final_stage), *PRODUCER_ARGS]
    print(f"+ {shlex.join(producer)}", file=sys.stderr, flush=True)
    # HTTP_PORT: a free port instead of the image's 8080, which this machine may be using.
    producer_env = {**run_env, "HTTP_PORT": str(_free_port())}
    result = subprocess.run(
        producer,
        cwd=cwd,
        env=producer_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        raise SmokeError(f"the producer exited with {result.returncode}")
    readings = check_readings(result.stdout)
    if readings != 5:
        raise SmokeError(f"the producer printed {readings} readings, expected 5")
    print(f"producer: {readings} readings in the wire format", file=sys.stderr)

    start_operator(chart_operator_command(), cwd, run_env, root)

    where = subprocess.run(
        [
            "python",
            "-c",
            "import domain, producer, sensorsim_operator; "
            "print(domain.__file__, producer.__file__, sensorsim_operator.__file__)",
        ],
        cwd=cwd,
        env=run_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if str(REPO_ROOT) in where or str(venv) not in where:
        raise SmokeError(f"the packages must come from the image's venv, not from {where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--no-cache", action="store_true", help="honour UV_NO_CACHE as the image")
    parser.add_argument("--python", default=base_python(), help="the base image's interpreter")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sensorsim-image-"))
    try:
        smoke(root, args.python, use_cache=not args.no_cache)
    except (SmokeError, subprocess.SubprocessError, ValueError) as error:
        print(f"image smoke test FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"scratch directory kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("image smoke test passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
