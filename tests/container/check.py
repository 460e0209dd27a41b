"""Run the container recipes of docs/pipelines.md, as written, against the local S3 server and mock Zenodo.

Called by check.sh.

There is no Docker engine and no Apptainer here: each recipe is read from docs/pipelines.md itself and run
with buildah (`buildah run --isolation chroot`) with the same user, mounts and environment it gives,
so that the docs cannot drift from what works:

- each `docker run`: `--user` (the caller, uid 4242, whose ~/.aws holds a profile and whose
  zenodo token file is `chmod 600`), `-v` mounts, `-e` variables from the caller's environment;
  HOME is `/`, as Docker gives an unknown uid; the Zenodo recipe without `--user` is refused
  with the message that names the file, the uid and the fix;
- each `apptainer run|exec`: as Apptainer runs it (the caller's uid, HOME bound at the same path,
  the working directory and /tmp bound, the host environment passed in except PATH) with junk
  PYTHONPATH / PYTHONHOME / PYTHONUSERBASE / VIRTUAL_ENV that must change nothing;
- the GitHub Actions step and the GitLab job (its script in the image, entrypoint reset, as the
  image's own user);
- the Slurm script: its #SBATCH lines, then the script itself, with `srun` and `apptainer`
  standing in for Slurm and Apptainer;
- the --shard section's Slurm array script, as its array's tasks at once (each with the
  SLURM_ARRAY_* variables Slurm gives it), and its Kubernetes indexed Job, as its pods at once
  (the image's own user, JOB_COMPLETION_INDEX, the volume, the Secret's keys): every object is
  written exactly once and the catalog after every file, as the server's own log shows.

After every run, nothing in the image's file system has changed (the image runs read-only).
Anything the docs say that this file cannot map fails the check: a new flag is either
supported here or the docs are wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.mock_zenodo import serve  # noqa: E402
from tests.servers import ADMIN, SeaweedFS  # noqa: E402

DATASET = REPO / "examples" / "humanlung-demo"
RECIPES = REPO / "docs" / "pipelines.md"  # where the container, HPC, CI and --shard recipes are documented
CALLER = 4242  # the person running the recipes: not root, not the image's own uid 10001
OTHER = 4343
IMAGE_UID = 10001
DATASET_OBJECTS = 21  # the example's catalog files and catalog.yaml
# Files buildah itself writes into a container for each run (name resolution), not the tool.
WRITTEN_BY_BUILDAH = {"etc/hosts", "etc/resolv.conf", "etc/hostname", "run", "run/.containerenv", "etc"}


def check(condition: bool, what: str, result: subprocess.CompletedProcess[str] | None = None) -> None:
    if not condition:
        detail = f"\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}" if result else ""
        sys.exit(f"container check FAILED: {what}{detail}")
    print(f"container check: ok: {what}", flush=True)


# -- what docs/pipelines.md says ------------------------------------------------------------------------


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^## ", text[start + len(heading):], re.M)
    return text[start:start + len(heading) + following.start()] if following else text[start:]


def shell_commands(body: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped, words split as sh does."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [shlex.split(line, comments=True) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@dataclass
class Recipes:
    docker: list[list[str]]
    apptainer: list[list[str]]
    slurm: str
    github_step: dict[str, Any]
    gitlab_job: dict[str, Any]
    other: list[list[str]] = field(default_factory=list)


def recipes(doc: str) -> Recipes:
    blocks = code_blocks(section(doc, "## Run it in a container"))
    commands = [words for lang, body in blocks if lang == "" for words in shell_commands(body)]
    slurm = [body for lang, body in blocks if lang == "bash" and "#SBATCH" in body]
    ci = [body for lang, body in blocks if lang == "yaml"]
    check(len(slurm) == 1 and len(ci) == 1, "docs: one Slurm script and one CI block")
    # The YAML block holds a GitHub step list and a GitLab job: split at the GitLab comment.
    yaml_text = next(body for lang, body in blocks if lang == "yaml")
    github_text, gitlab_text = yaml_text.split("# GitLab CI", 1)
    github = yaml.safe_load(github_text)[0]
    gitlab = yaml.safe_load("# GitLab CI" + gitlab_text)
    return Recipes(
        docker=[c for c in commands if c[:2] == ["docker", "run"]],
        apptainer=[c for c in commands if c[:1] == ["apptainer"] and c[1] in ("run", "exec")],
        slurm=slurm[0], github_step=github, gitlab_job=gitlab["publish"],
        other=[c for c in commands if c[:2] not in (["docker", "run"], ["apptainer", "run"], ["apptainer", "exec"])],
    )


# -- the caller's machine -----------------------------------------------------------------------


@dataclass
class Host:
    """What the person running the recipes has: a home with ~/.aws and a token file, data, servers."""

    work: Path
    home: Path
    data: Path
    s3_endpoint: str
    zenodo_api: str
    zenodo_token: str
    env: dict[str, str]

    def expand(self, word: str) -> str:
        """The docs' placeholders and shell expansions, as the caller's shell would give them."""
        word = word.replace("/path/to/out", str(self.data))
        word = word.replace("$(id -u):$(id -g)", f"{CALLER}:{CALLER}")
        word = re.sub(r"^~(?=/|$)", str(self.home), word)
        word = re.sub(r"(?<=:)~(?=/)", str(self.home), word)
        word = word.replace("$HOME", str(self.home)).replace("$PWD", str(self.work / "project"))
        return word


def own(path: Path, uid: int, mode: int) -> None:
    os.chown(path, uid, uid)
    path.chmod(mode)


def make_host(work: Path, s3_endpoint: str, zenodo_api: str, zenodo_token: str) -> Host:
    work.mkdir()
    for directory in (work.parent, work):  # the caller's uid must reach its files
        directory.chmod(0o755)
    home = work / "home" / "jane"
    home.mkdir(parents=True)
    (home / ".aws").mkdir()
    (home / ".aws" / "config").write_text(
        f"[profile lab]\nregion = us-east-1\nendpoint_url = {s3_endpoint}\n")
    (home / ".aws" / "credentials").write_text(
        f"[lab]\naws_access_key_id = {ADMIN.access_key}\naws_secret_access_key = {ADMIN.secret_key}\n")
    (home / "zenodo-token.txt").write_text(zenodo_token + "\n")
    for path in (home.parent, home, home / ".aws"):
        own(path, CALLER, 0o755 if path == home.parent else 0o700)
    for path in (home / ".aws" / "config", home / ".aws" / "credentials", home / "zenodo-token.txt"):
        own(path, CALLER, 0o600)
    data = work / "out"
    shutil.copytree(DATASET, data)
    project = work / "project"
    project.mkdir()
    shutil.copytree(DATASET, project / "out")  # a CI checkout: readable by everyone, as git leaves it
    for root in (data, project):
        for path in [root, *root.rglob("*")]:
            own(path, CALLER, 0o755 if path.is_dir() else 0o644)
    env = {
        "HOME": str(home), "USER": "jane", "LANG": "C.UTF-8", "AWS_PROFILE": "lab",
        "AWS_EC2_METADATA_DISABLED": "true", "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    return Host(work, home, data, s3_endpoint, zenodo_api, zenodo_token, env)


def junk_python_environment(host: Host) -> dict[str, str]:
    """What an HPC user's shell may export: each would hijack or break a Python that honoured it."""
    junk = host.home / "junk-python"
    (junk / "uploader").mkdir(parents=True)
    (junk / "uploader" / "__init__.py").write_text("raise SystemExit('the host PYTHONPATH ran instead')\n")
    (junk / "sitecustomize.py").write_text("raise SystemExit('the host sitecustomize ran')\n")
    user_site = junk / "userbase" / "lib"
    for version in ("3.11", "3.12"):
        (user_site / f"python{version}" / "site-packages" / "boto3").mkdir(parents=True)
        (user_site / f"python{version}" / "site-packages" / "boto3" / "__init__.py").write_text(
            "raise SystemExit('the host user site ran')\n")
    for path in [junk, *junk.rglob("*")]:
        own(path, CALLER, 0o755 if path.is_dir() else 0o644)
    return {"PYTHONPATH": str(junk), "PYTHONHOME": "/nonexistent/python-home", "PYTHONUSERBASE": str(junk / "userbase"),
            "VIRTUAL_ENV": str(host.home / "venvs" / "analysis"), "PYTHONSTARTUP": str(junk / "sitecustomize.py")}


# -- running the image --------------------------------------------------------------------------


@dataclass
class Run:
    """One `buildah run` of the image: what Docker or Apptainer would do with the same recipe."""

    user: str | None = None  # None: the image's own USER
    mounts: list[str] = field(default_factory=list)  # SRC:DST[:ro]
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    entrypoint: bool = True  # False: the command is given whole (apptainer exec, a CI script)
    unset_home: bool = False


class Image:
    def __init__(self, name: str) -> None:
        self.name = name
        config = json.loads(subprocess.check_output(["buildah", "inspect", "--type", "image", name], text=True))
        self.entrypoint: list[str] = config["OCIv1"]["config"]["Entrypoint"]
        self.default_user: str = config["OCIv1"]["config"].get("User", "")

    @contextmanager
    def container(self) -> Iterator[str]:
        container = subprocess.check_output(["buildah", "from", "--quiet", self.name], text=True).strip()
        try:
            yield container
        finally:
            subprocess.run(["buildah", "rm", container], capture_output=True)

    def run(self, how: Run, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
        with self.container() as container:
            root = Path(subprocess.check_output(["buildah", "mount", container], text=True).strip())
            before = snapshot(root)
            command = ["buildah", "run", "--isolation", "chroot", "--user", how.user or self.default_user]
            for name, value in how.env.items():
                command += ["--env", f"{name}={value}"]
            for mount in how.mounts:
                command += ["-v", mount]
            if how.workdir:
                command += ["--workingdir", how.workdir]
            # Docker and Apptainer give HOME themselves; `env` in front says exactly which.
            home = ["-u", "HOME"] if how.unset_home else [f"HOME={how.env.get('HOME', '/')}"]
            program = [*self.entrypoint, *args] if how.entrypoint else args
            command += [container, "--", "env", *home, *program]
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            targets = {mount.split(":")[1].strip("/") for mount in how.mounts}
            # A HOME the process may write to (the image's own user, root) may hold its hash cache.
            targets.add(f"{how.env.get('HOME', '/').strip('/')}/.cache/cartload-uploader")
            changed = [p for p in changes(before, snapshot(root)) if p not in WRITTEN_BY_BUILDAH
                       and not any(p == t or t.startswith(p + "/") or p.startswith(t + "/") for t in targets)]
            subprocess.run(["buildah", "umount", container], capture_output=True)
        if changed:
            check(False, f"the image's file system was written to: {changed[:5]}", result)
        if "Traceback" in result.stderr:
            check(False, "no traceback", result)
        return result


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path of the container's file system (relative), with its mtime and size."""
    found = {}
    for directory, directories, files in os.walk(root):
        for name in [*directories, *files]:
            path = Path(directory, name)
            try:
                info = path.lstat()
            except OSError:
                continue
            found[str(path.relative_to(root))] = (info.st_mtime_ns, info.st_size)
    return found


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(p for p in after if p and before.get(p) != after[p])


# -- recipes as Docker, Apptainer, CI and Slurm run them ----------------------------------------


def docker_run(host: Host, words: list[str]) -> tuple[Run, list[str]]:
    """`docker run [options] IMAGE ARGS...` as a Run of our image."""
    how = Run(env={"HOME": "/"})  # Docker's HOME for a uid the image's /etc/passwd does not know
    rest = [host.expand(word) for word in words[2:]]
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag == "--rm":
            continue
        value = rest.pop(0)
        if flag == "--user":
            how.user = value
            if value.split(":")[0] == str(IMAGE_UID) or value.startswith("uploader"):
                how.env["HOME"] = "/home/uploader"
        elif flag == "-v":
            how.mounts.append(value)
        elif flag == "-e":
            name, _, given = value.partition("=")
            if given or name in host.env:
                how.env[name] = given or host.env[name]
        else:
            check(False, f"docs: docker run uses {flag}, which tests/container/check.py does not know")
    if how.user is None:
        how.env["HOME"] = "/home/uploader"  # the image's USER is in its /etc/passwd
    image, *args = rest
    check(image.rsplit("/", 1)[-1].split(":")[0] == "cartload-uploader", f"docker run runs the image ({image})")
    return how, args


APPTAINER_SKIP_ENV = {"PATH", "LD_LIBRARY_PATH", "PS1"}  # Apptainer keeps the image's own


def apptainer(host: Host, words: list[str], env: dict[str, str], cwd: Path) -> tuple[Run, list[str]]:
    """`apptainer run|exec [--bind SRC:DST] SIF ARGS...` as Apptainer runs it."""
    action, rest = words[1], [host.expand(word) for word in words[2:]]
    how = Run(user=f"{CALLER}:{CALLER}", entrypoint=action == "run", workdir=str(cwd),
              env={name: value for name, value in env.items() if name not in APPTAINER_SKIP_ENV})
    how.mounts += [f"{host.home}:{host.home}", f"{cwd}:{cwd}", "/tmp:/tmp"]
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag in ("--bind", "-B"):
            how.mounts += [bind if bind.count(":") else f"{bind}:{bind}" for bind in rest.pop(0).split(",")]
        else:
            check(False, f"docs: apptainer {action} uses {flag}, which tests/container/check.py does not know")
    sif, *args = rest
    check(sif.endswith(".sif"), f"apptainer {action} runs the image file ({sif})")
    return how, args


def uploaded(s3: Any, bucket: str, prefix: str) -> set[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return {item["Key"][len(prefix) + 1:] for item in listing}


def s3_destination(args: list[str]) -> tuple[str, str]:
    uri = args[args.index("--s3-dir") + 1]
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


class Zenodo:
    def __init__(self, api: str, token: str) -> None:
        self.api, self.token = api, token

    def new_draft(self) -> int:
        answer = requests.post(f"{self.api}/deposit/depositions", headers={"Authorization": f"Bearer {self.token}"},
                               json={"metadata": {"title": "container check", "upload_type": "dataset",
                                                  "description": "check", "creators": [{"name": "Doe, Jane"}]}},
                               timeout=30)
        answer.raise_for_status()
        return int(answer.json()["id"])

    def files(self, deposition: int) -> set[str]:
        answer = requests.get(f"{self.api}/deposit/depositions/{deposition}/files",
                              headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        return {item["filename"] for item in answer.json()}

    def state(self, deposition: int) -> str:
        answer = requests.get(f"{self.api}/deposit/depositions/{deposition}",
                              headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        return str(answer.json()["state"])


def with_zenodo(args: list[str], zenodo: Zenodo, deposition: int) -> list[str]:
    """The docs' deposition id is one of the mock's; its API root is the mock's (the one flag added)."""
    args = [str(deposition) if arg == "1234567" else arg for arg in args]
    return [*args, "--zenodo-url", zenodo.api]


def check_docker_recipes(image: Image, host: Host, found: Recipes, s3: Any, zenodo: Zenodo) -> None:
    check(len(found.docker) == 2, "docs: a docker run for upload_aws and one for upload_zenodo")
    check(["docker", "build", "-t", "cartload-uploader", "."] in found.other, "docs: docker build -t IMAGE .")
    aws = next(words for words in found.docker if "upload_aws" in words)
    if ["mkdir", "-p", "~/.cache/cartload-uploader"] in found.other:
        cache = host.home / ".cache" / "cartload-uploader"
        cache.mkdir(parents=True)
        for path in (cache.parent, cache):
            own(path, CALLER, 0o755)
    how, args = docker_run(host, aws)
    check(how.user == f"{CALLER}:{CALLER}", "docs: upload_aws runs as the caller (--user)")
    bucket, prefix = s3_destination(args)
    result = image.run(how, args)
    check(result.returncode == 0 and len(uploaded(s3, bucket, prefix)) == DATASET_OBJECTS,
          f"docs: docker run upload_aws: as uid {CALLER}, HOME=/, credentials from the mounted ~/.aws profile", result)
    check("marker files could not be written" in result.stderr and "Read-only file system" in result.stderr,
          "a read-only /data: uploaded, with one notice about cartloader's marker files", result)
    cache_files = list((host.home / ".cache" / "cartload-uploader").glob("hashes.sqlite3"))
    check("hash cache" not in result.stderr and len(cache_files) == 1 and cache_files[0].stat().st_uid == CALLER,
          "the hash cache is kept in the mounted ~/.cache, owned by the caller", result)
    again = image.run(how, args)
    nothing_sent = f"0 uploaded (0 B), {DATASET_OBJECTS} unchanged"
    check(again.returncode == 0 and nothing_sent in again.stderr and "hash cache" not in again.stderr,
          "the same recipe again: nothing re-sent", again)

    zenodo_recipe = next(words for words in found.docker if "upload_zenodo" in words)
    how, args = docker_run(host, zenodo_recipe)
    deposition = zenodo.new_draft()
    result = image.run(how, with_zenodo(args, zenodo, deposition))
    check(result.returncode == 0 and len(zenodo.files(deposition)) == DATASET_OBJECTS
          and host.zenodo_token not in result.stdout + result.stderr,
          "docs: docker run upload_zenodo: the caller's chmod 600 token file, mounted", result)

    without_user = [word for i, word in enumerate(zenodo_recipe)
                    if word != "--user" and zenodo_recipe[i - 1] != "--user"]
    how, args = docker_run(host, without_user)
    result = image.run(how, with_zenodo(args, zenodo, zenodo.new_draft()))
    expected = (f"error: --zenodo-token /run/secrets/zenodo: not readable by uid {IMAGE_UID}"
                f" (owner uid {CALLER}, mode 600); run as the file's owner")
    check(result.returncode == 2 and result.stderr.startswith(expected) and "ZENODO_TOKEN" in result.stderr,
          f"without --user the token file is refused: which file, uid {IMAGE_UID}, the fix", result)

    how, args = docker_run(host, aws)
    how.unset_home = True
    how.mounts = [m for m in how.mounts if "/.cache/" not in m]
    prefix_args = [arg.replace("datasets/lung-1", "no-home") for arg in args]
    result = image.run(how, prefix_args)
    check(result.returncode == 0 and "hash cache off" in result.stderr
          and len(uploaded(s3, bucket, "no-home")) == DATASET_OBJECTS,
          "HOME unset (some schedulers): the image's home, the mounted ~/.aws, the cache off with a notice", result)


def check_apptainer_recipes(image: Image, host: Host, found: Recipes, s3: Any, zenodo: Zenodo) -> None:
    check(len(found.apptainer) == 2, "docs: apptainer run (upload_aws) and apptainer exec (upload_zenodo)")
    junk = junk_python_environment(host)
    cwd = host.work / "project"
    env = host.env | junk
    env.pop("AWS_PROFILE")  # keys in the environment this time: AWS_* must pass through
    env |= {"AWS_ACCESS_KEY_ID": ADMIN.access_key, "AWS_SECRET_ACCESS_KEY": ADMIN.secret_key,
            "AWS_ENDPOINT_URL_S3": host.s3_endpoint}
    run_recipe = next(words for words in found.apptainer if words[1] == "run")
    how, args = apptainer(host, run_recipe, env, cwd)
    bucket, prefix = s3_destination(args)
    result = image.run(how, args)
    check(result.returncode == 0 and len(uploaded(s3, bucket, prefix)) == DATASET_OBJECTS,
          "docs: apptainer run upload_aws: caller's uid, HOME bound, AWS_* passed in, junk PYTHON* ignored", result)
    cache = host.home / ".cache" / "cartload-uploader" / "hashes.sqlite3"
    check(cache.exists() and "hash cache" not in result.stderr, "the hash cache is in the bound HOME", result)

    exec_recipe = next(words for words in found.apptainer if words[1] == "exec")
    how, args = apptainer(host, exec_recipe, host.env | junk, cwd)
    deposition = zenodo.new_draft()
    result = image.run(how, with_zenodo(args, zenodo, deposition))
    check(result.returncode == 0 and len(zenodo.files(deposition)) == DATASET_OBJECTS,
          "docs: apptainer exec ... cartload-uploader upload_zenodo: the token file in the bound HOME", result)
    how.env["ZENODO_TOKEN"] = host.zenodo_token
    no_file = [arg for i, arg in enumerate(args) if arg != "--zenodo-token" and args[i - 1] != "--zenodo-token"]
    deposition = zenodo.new_draft()
    result = image.run(how, with_zenodo(no_file, zenodo, deposition))
    check(result.returncode == 0 and len(zenodo.files(deposition)) == DATASET_OBJECTS,
          "ZENODO_TOKEN from the host environment passes through", result)


def github_command(step: dict[str, Any]) -> list[str]:
    return shlex.split(step["run"].replace("${{ github.run_id }}", "4711"))


def check_ci_recipes(image: Image, host: Host, found: Recipes, s3: Any, zenodo: Zenodo) -> None:
    step = found.github_step
    secrets = {"AWS_ACCESS_KEY_ID": ADMIN.access_key, "AWS_SECRET_ACCESS_KEY": ADMIN.secret_key}
    step_env = {name: re.sub(r"\$\{\{ secrets\.(\w+) \}\}", lambda m: secrets[m.group(1)], str(value))
                for name, value in step["env"].items()}
    runner_env = host.env | step_env | {"AWS_ENDPOINT_URL_S3": host.s3_endpoint}
    words = github_command(step)
    check(words[:2] == ["docker", "run"] and step["run"].count("\n") <= 1, "GitHub step: one docker run")
    how, args = docker_run(dataclasses.replace(host, env=runner_env), words)
    how.env["AWS_ENDPOINT_URL_S3"] = host.s3_endpoint  # the one addition: the local server, not AWS
    bucket, prefix = s3_destination(args)
    result = image.run(how, args)
    check(result.returncode == 0 and len(uploaded(s3, bucket, prefix)) == DATASET_OBJECTS,
          "docs: GitHub Actions step: docker run as the image's user, secrets as -e variables", result)
    how.user = "0:0"
    how.env["HOME"] = "/root"
    result = image.run(how, [arg.replace("run-4711", "run-as-root") for arg in args])
    check(result.returncode == 0 and len(uploaded(s3, bucket, "run-as-root")) == DATASET_OBJECTS,
          "the same step as root (a GitHub container: job)", result)

    job = found.gitlab_job
    check(job["image"]["entrypoint"] == [""], "GitLab job: entrypoint reset")
    deposition = zenodo.new_draft()
    variables = {"ZENODO_TOKEN": host.zenodo_token, "ZENODO_ID": str(deposition), "CI": "true",
                 "HOME": "/home/uploader"}
    project = host.work / "project"
    # GitLab runs the script with the image's shell, in the checkout, as the image's user.
    script = "set -e\n" + "\n".join(f"{line} --zenodo-url {zenodo.api}" for line in job["script"])
    how = Run(env=variables, mounts=[f"{project}:{project}"], workdir=str(project), entrypoint=False)
    result = image.run(how, ["/bin/sh", "-c", script])
    check(result.returncode == 0 and zenodo.state(deposition) == "done"
          and len(zenodo.files(deposition)) == DATASET_OBJECTS and host.zenodo_token not in result.stderr,
          "docs: GitLab job: the script in the image (entrypoint reset), published", result)


SBATCH_EXPECTED = ("--time=", "--signal=TERM@", "--output=")


def check_slurm_script(image: Image, host: Host, found: Recipes, s3: Any) -> None:
    script = found.slurm
    lines = script.splitlines()
    check(lines[0] == "#!/bin/bash", "Slurm script: starts with #!/bin/bash")
    sbatch = [line.split(None, 1)[1] for line in lines if line.startswith("#SBATCH ")]
    missing = [flag for flag in SBATCH_EXPECTED if not any(option.startswith(flag) for option in sbatch)]
    check(not missing and all(option.startswith("--") for option in sbatch), f"#SBATCH lines: {sbatch}")
    first_command = next(i for i, line in enumerate(lines[1:], 1) if line and not line.startswith("#"))
    check(all(not line.startswith("#SBATCH") for line in lines[first_command:]),
          "every #SBATCH line comes before the first command (sbatch ignores later ones)")
    check(subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0, "Slurm script: bash -n")

    # Run it: `srun` and `apptainer` are stand-ins that run the image as Apptainer would.
    bin_dir = slurm_stand_ins(image, host, host.work / "slurm-bin")
    job_dir = host.work / "project"
    bucket, prefix = s3_destination(next(w for w in shell_commands(script) if "upload_aws" in w))
    for key in uploaded(s3, bucket, prefix):  # an earlier recipe's upload there: this one starts afresh
        s3.delete_object(Bucket=bucket, Key=f"{prefix}/{key}")
    (job_dir / "upload.sh").write_text(script.replace("/path/to/out", str(host.data)))
    env = host.env | {"PATH": f"{bin_dir}:{host.env['PATH']}:{os.environ.get('PATH', '')}",
                      "SLURM_JOB_ID": "4711", "PYTHONPATH": "/nonexistent/site-packages"}
    result = subprocess.run(["bash", str(job_dir / "upload.sh")], env=env, cwd=job_dir, capture_output=True,
                            text=True, timeout=600)
    check(result.returncode == 0 and len(uploaded(s3, bucket, prefix)) == DATASET_OBJECTS
          and "Traceback" not in result.stderr,
          "docs: Slurm script: runs with srun and apptainer standing in, uploads the dataset", result)


def slurm_stand_ins(image: Image, host: Host, bin_dir: Path) -> Path:
    """`srun` and `apptainer` stand-ins in `bin_dir`: the image run as Apptainer would run it."""
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "apptainer").write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(__file__)} --as-apptainer"
        f" {shlex.quote(image.name)} {shlex.quote(str(host.home))} {shlex.quote(str(host.work))} \"$@\"\n")
    for name in ("srun", "apptainer"):
        (bin_dir / name).chmod(0o755)
    return bin_dir


# -- the --shard recipes: a Slurm array, a Kubernetes indexed Job ---------------------------------

SHARD_SECTION = "## One upload split over many workers"
JOB_CONTAINER_KEYS = {"name", "image", "args", "envFrom", "volumeMounts"}


@dataclass
class ShardRecipes:
    slurm_array: str
    job: dict[str, Any]


def shard_recipes(doc: str) -> ShardRecipes:
    blocks = code_blocks(section(doc, SHARD_SECTION))
    arrays = [body for lang, body in blocks if lang == "bash" and "#SBATCH --array=" in body]
    jobs = [yaml.safe_load(body) for lang, body in blocks if lang == "yaml"]
    check(len(arrays) == 1 and len(jobs) == 1, "docs: --shard section: one Slurm array script, one Kubernetes Job")
    return ShardRecipes(arrays[0], jobs[0])


def array_tasks(script: str) -> list[int]:
    """The task ids of `#SBATCH --array=MIN-MAX[:STEP][%LIMIT]`."""
    spec = next(line.split("=", 1)[1] for line in script.splitlines() if line.startswith("#SBATCH --array="))
    match = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?(?:%\d+)?", spec.strip())
    check(match is not None, f"#SBATCH --array={spec}: one range, as --shard auto needs")
    assert match is not None
    return list(range(int(match[1]), int(match[2]) + 1, int(match[3] or 1)))


def start_afresh(s3: Any, bucket: str, prefix: str) -> int:
    """Empty the prefix an earlier recipe filled; the server time from which this recipe's writes count."""
    for key in uploaded(s3, bucket, prefix):
        s3.delete_object(Bucket=bucket, Key=f"{prefix}/{key}")
    return time.time_ns()


def check_written_once(server: SeaweedFS, bucket: str, prefix: str, since: int, what: str,
                       results: list[subprocess.CompletedProcess[str]]) -> None:
    """Every object of the dataset written once (the catalog at least once), the catalog after every file."""
    writes = [w for w in server.writes(bucket, f"{prefix}/") if w.ns >= since and w.kind != "delete"]
    keys = [w.key.removeprefix(f"{prefix}/") for w in writes]
    counts = Counter(keys)
    files = [key for key in counts if key != "catalog.yaml"]
    ordered = "catalog.yaml" in keys and keys.index("catalog.yaml") > max(keys.index(key) for key in files)
    detail = subprocess.CompletedProcess([], 0, "\n".join(r.stdout for r in results),
                                         "\n".join(r.stderr for r in results) + f"\nwrites: {keys}")
    check(len(counts) == DATASET_OBJECTS and all(counts[key] == 1 for key in files) and ordered
          and all(r.returncode == 0 for r in results), what, detail)


def check_shard_recipes(image: Image, host: Host, found: ShardRecipes, s3: Any, server: SeaweedFS) -> None:
    script = found.slurm_array
    lines = script.splitlines()
    first_command = next(i for i, line in enumerate(lines[1:], 1) if line and not line.startswith("#"))
    check(lines[0] == "#!/bin/bash" and all(not line.startswith("#SBATCH") for line in lines[first_command:])
          and subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0,
          "Slurm array script: #!/bin/bash, every #SBATCH line first, bash -n")
    tasks = array_tasks(script)
    words = next(w for w in shell_commands(script) if "upload_aws" in w)
    check(words[words.index("--shard") + 1] == "auto", "the Slurm array runs --shard auto")
    bucket, prefix = s3_destination(words)
    bin_dir = slurm_stand_ins(image, host, host.work / "slurm-array-bin")
    job_dir = host.work / "project"
    (job_dir / "upload-array.sh").write_text(script.replace("/path/to/out", str(host.data)))
    base = host.env | {"PATH": f"{bin_dir}:{host.env['PATH']}:{os.environ.get('PATH', '')}",
                       "SLURM_ARRAY_JOB_ID": "4712", "SLURM_ARRAY_TASK_MIN": str(tasks[0]),
                       "SLURM_ARRAY_TASK_MAX": str(tasks[-1]), "SLURM_ARRAY_TASK_COUNT": str(len(tasks)),
                       "SLURM_ARRAY_TASK_STEP": str(tasks[1] - tasks[0] if len(tasks) > 1 else 1)}
    since = start_afresh(s3, bucket, prefix)
    with ThreadPoolExecutor(len(tasks)) as pool:  # the array's tasks run at once, as nodes would run them
        results = list(pool.map(lambda task: subprocess.run(
            ["bash", str(job_dir / "upload-array.sh")], cwd=job_dir, capture_output=True, text=True, timeout=600,
            env=base | {"SLURM_JOB_ID": str(4713 + task), "SLURM_ARRAY_TASK_ID": str(task)}), tasks))
    check(all("Traceback" not in r.stderr and f"shard {i}/{len(tasks)}, Slurm array task" in r.stderr
              for i, r in enumerate(results, 1)), "each array task takes its own share", results[0])
    check_written_once(server, bucket, prefix, since, f"docs: Slurm array: {len(tasks)} tasks at once, each object"
                       " written once, the catalog after every file", results)

    job = found.job
    spec = job["spec"]
    pod = spec["template"]["spec"]
    check(job["apiVersion"] == "batch/v1" and job["kind"] == "Job" and spec["completionMode"] == "Indexed"
          and pod["restartPolicy"] == "Never" and len(pod["containers"]) == 1, "docs: Job: an indexed batch/v1 Job")
    container = pod["containers"][0]
    unknown = set(container) - JOB_CONTAINER_KEYS
    check(not unknown, "docs: Job's container: only what tests/container/check.py maps ("
          + ", ".join(sorted(JOB_CONTAINER_KEYS)) + ")" + (f", not {sorted(unknown)}" if unknown else ""))
    args = [str(arg) for arg in container["args"]]
    count = int(spec["completions"])
    check(args[args.index("--shard") + 1] == f"auto/{count}", f"the Job runs --shard auto/{count}, N = completions")
    check(container["image"].rsplit("/", 1)[-1].split(":")[0] == "cartload-uploader", "the Job runs the image")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = []
    for mount in container["volumeMounts"]:
        claim = volumes[mount["name"]].get("persistentVolumeClaim")
        check(claim is not None, f"volume {mount['name']}: a persistentVolumeClaim (the dataset)")
        mounts.append(f"{host.data}:{mount['mountPath']}" + (":ro" if mount.get("readOnly") else ""))
    check([list(source) for source in container["envFrom"]] == [["secretRef"]], "the keys come from a Secret")
    # The Secret's keys, and the one addition: the local server, not AWS. HOME: the image's user's own.
    env = {"HOME": "/home/uploader", "AWS_ACCESS_KEY_ID": ADMIN.access_key, "AWS_SECRET_ACCESS_KEY": ADMIN.secret_key,
           "AWS_ENDPOINT_URL_S3": host.s3_endpoint}
    bucket, prefix = s3_destination(args)
    since = start_afresh(s3, bucket, prefix)
    with ThreadPoolExecutor(min(count, int(spec.get("parallelism", count)))) as pool:
        results = list(pool.map(lambda index: image.run(Run(env=env | {"JOB_COMPLETION_INDEX": str(index)},
                                                            mounts=mounts), args), range(count)))
    check_written_once(server, bucket, prefix, since, f"docs: Kubernetes Job: {count} pods at once, each object"
                       " written once, the catalog after every file", results)


def as_apptainer(image_name: str, home: str, work: str, argv: list[str]) -> int:
    """The `apptainer` stand-in the Slurm script calls: the same translation as the docs' own commands."""
    host = Host(Path(work), Path(home), Path(work) / "out", "", "", "", {})
    how, args = apptainer(host, ["apptainer", *argv], dict(os.environ), Path.cwd())
    result = Image(image_name).run(how, args)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def main(image_name: str, version: str) -> None:
    image = Image(image_name)
    result = image.run(Run(user=f"{CALLER}:{CALLER}"), ["--version"])
    check(result.returncode == 0 and result.stdout == f"cartload-uploader {version}\n", "--version", result)
    result = image.run(Run(), ["--help"])
    check(result.returncode == 0 and "upload_zenodo" in result.stdout, "--help", result)
    for command in ("upload_aws", "upload_zenodo"):  # cartloader's names, as commands of their own
        result = image.run(Run(user=f"{CALLER}:{CALLER}", entrypoint=False), [command, "--version"])
        check(result.returncode == 0 and result.stdout == f"cartload-uploader {version}\n", command, result)
    found = recipes(RECIPES.read_text())
    sharded = shard_recipes(RECIPES.read_text())

    with tempfile.TemporaryDirectory() as work, SeaweedFS(Path(work) / "s3") as server:
        s3 = server.client()
        every = [*found.docker, *found.apptainer, *shell_commands(found.slurm), github_command(found.github_step),
                 *shell_commands(sharded.slurm_array), [str(arg) for arg in
                                                        sharded.job["spec"]["template"]["spec"]["containers"][0]["args"]]]
        buckets = {s3_destination(words)[0] for words in every if "--s3-dir" in words}
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        token = "container-check-token-" + os.urandom(6).hex()
        mock = serve(tokens=[token])
        try:
            zenodo_api = f"http://127.0.0.1:{mock.server_port}/api"
            host = make_host(Path(work) / "host", server.endpoint_url, zenodo_api, token)
            zenodo = Zenodo(zenodo_api, token)
            check_docker_recipes(image, host, found, s3, zenodo)
            check_apptainer_recipes(image, host, found, s3, zenodo)
            check_ci_recipes(image, host, found, s3, zenodo)
            check_slurm_script(image, host, found, s3)
            check_shard_recipes(image, host, sharded, s3, server)
        finally:
            mock.shutdown()


if __name__ == "__main__":
    if sys.argv[1] == "--as-apptainer":
        sys.exit(as_apptainer(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]))
    main(sys.argv[1], sys.argv[2])
