"""Real engine servers on 127.0.0.1, fetched from Maven Central: Neo4j 5.26 and OpenSearch 2.19.

Each server is a JVM started from jars that Maven resolves into its local cache (~/.m2) from the
pom beside this file; nothing is bundled. A server lives in a run folder (data, log, pid file),
listens on loopback only, is health-checked before ``start`` returns and is stopped with its
whole process group::

    healthgraph services start          # both, on the default ports
    healthgraph services status
    healthgraph services stop

Without Java or Maven, ``start`` raises ``ServerUnavailable`` (HG-0402) saying what is missing.

``copy_graph_to_neo4j`` fills a Neo4j run folder with a copy of another graph through Neo4j's offline
bulk importer, from the same jars (``healthgraph services copy-to-neo4j``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ontology.check import find_java
from ontology.errors import GraphCopyFailed, ServerUnavailable

if TYPE_CHECKING:
    from graph import GraphStore
    from graph.neo4j_import import ImportFiles

HERE = Path(__file__).parent
CLASSPATH_CACHE = Path.home() / ".cache" / "healthgraph" / "servers"
"""Resolved classpaths (the jars themselves stay in Maven's local repository, ~/.m2)."""

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Servers started by this process, kept so they can be reaped when stopped."""


@dataclass(frozen=True)
class ServerKind:
    """How to run one engine: its pom, main class or launcher source, and how to tell it is up."""

    name: str
    java_major: int
    default_port: int
    heap_mib: int
    ports: range | None = None
    """Ports the server can listen on (None: any)."""
    page_cache_mib: int = 128
    """Neo4j's page cache (store files held in memory, outside the heap); unused by OpenSearch."""

    @property
    def pom(self) -> Path:
        return HERE / self.name / "pom.xml"

    def command(self, java: str, classpath: str, home: Path, port: int) -> list[str]:
        heap = [f"-Xms{self.heap_mib}m", f"-Xmx{self.heap_mib}m"]
        if self.name == "neo4j":
            return [java, *heap, "-cp", classpath, str(HERE / "neo4j" / "Launcher.java"), str(home / "data"), str(port),
                    str(self.page_cache_mib)]
        # The runner's HTTP port is its base port + 1; transport ports are chosen by the node.
        return [java, *heap, "-cp", classpath, "org.codelibs.opensearch.runner.OpenSearchRunner",
                "-basePath", str(home / "data"), "-confPath", str(home / "conf"), "-numOfNode", "1",
                "-baseHttpPort", str(port - 1), "-clusterName", "healthgraph"]

    def configure(self, home: Path) -> None:
        """Put the project's server settings in ``home`` (OpenSearch: ``conf/opensearch.yml``, read at start)."""
        if self.name == "opensearch":
            (home / "conf").mkdir(exist_ok=True)
            shutil.copyfile(HERE / "opensearch" / "opensearch.yml", home / "conf" / "opensearch.yml")

    def url(self, port: int) -> str:
        return f"bolt://127.0.0.1:{port}" if self.name == "neo4j" else f"http://127.0.0.1:{port}"

    def healthy(self, port: int, home: Path) -> bool:
        if self.name == "neo4j":  # the launcher prints its marker once the database is available
            log = home / "server.log"
            with socket.socket() as s:
                s.settimeout(1)
                listening = s.connect_ex(("127.0.0.1", port)) == 0
            return listening and log.exists() and "HEALTHGRAPH-NEO4J READY" in log.read_text(errors="replace")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_cluster/health", timeout=2) as r:
                return json.load(r).get("status") in ("green", "yellow")
        except OSError:
            return False


KINDS = {
    "neo4j": ServerKind("neo4j", java_major=17, default_port=7687, heap_mib=768),
    # The runner looks for its HTTP port between its base port and 9299 and gives up above that.
    "opensearch": ServerKind("opensearch", java_major=17, default_port=9200, heap_mib=512, ports=range(9200, 9300)),
}


@dataclass
class Server:
    """A started (or found) server: where it listens, its pid and its log."""

    kind: str
    url: str
    port: int
    pid: int
    home: Path

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def classpath(kind: ServerKind, cache: Path) -> str:
    """Resolve the server's jars with Maven (cached by the pom's hash); returns a Java classpath."""
    digest = hashlib.sha256(kind.pom.read_bytes()).hexdigest()[:12]
    out = cache / f"{kind.name}-{digest}.classpath"
    if out.exists() and all(Path(p).exists() for p in out.read_text().split(os.pathsep)):
        return out.read_text()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerUnavailable(f"{kind.name}: 未找到 Maven (Maven not found): install it (apt-get install maven)",
                                server=kind.name)
    cache.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([mvn, "-q", "-B", "-f", str(kind.pom), "dependency:build-classpath",
                           f"-Dmdep.outputFile={out}"], capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0 or not out.exists():
        raise ServerUnavailable(f"{kind.name}: Maven could not resolve the server jars:\n{proc.stdout[-2000:]}"
                                f"{proc.stderr[-2000:]}", server=kind.name)
    return out.read_text()


def requirements(kind_name: str) -> str | None:
    """Why this server cannot be started here (no Java, no Maven), or None when it can."""
    kind = KINDS[kind_name]
    if find_java(kind.java_major) is None:
        return f"{kind_name} needs Java {kind.java_major}+ (未找到 Java / no Java found)"
    if shutil.which("mvn") is None:
        return f"{kind_name} needs Maven to fetch its jars (未找到 Maven / no Maven found)"
    return None


def start(kind_name: str, home: Path, *, port: int | None = None, cache: Path | None = None,
          heap_mib: int | None = None, page_cache_mib: int | None = None, timeout: float = 180) -> Server:
    """Start a server in ``home`` (data, log, pid file) and wait until it answers.

    ``heap_mib`` and (Neo4j) ``page_cache_mib`` override the small defaults meant for tests, e.g. for a
    benchmark over millions of rows.

    Reuses a server already running from the same folder. Raises ServerUnavailable with the log's
    tail when it does not come up in time.
    """
    kind = KINDS[kind_name]
    home = home.resolve()
    running = status(kind_name, home)
    if running is not None:
        return running
    java = find_java(kind.java_major)
    if java is None:
        raise ServerUnavailable(requirements(kind_name) or kind_name, server=kind_name)
    cp = classpath(kind, cache or CLASSPATH_CACHE)
    port = port or free_port(kind_name)
    home.mkdir(parents=True, exist_ok=True)
    if (home / "server.log").exists():  # keep the previous run's log for post-mortems
        (home / "server.log").replace(home / "server.previous.log")
    log = open(home / "server.log", "wb")  # noqa: SIM115 - handed to the child process
    if heap_mib:
        kind = dataclasses.replace(kind, heap_mib=heap_mib)
    if page_cache_mib:
        kind = dataclasses.replace(kind, page_cache_mib=page_cache_mib)
    kind.configure(home)
    proc = subprocess.Popen(kind.command(java, cp, home, port), cwd=home, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    _CHILDREN[proc.pid] = proc
    server = Server(kind_name, kind.url(port), port, proc.pid, home)
    (home / "server.json").write_text(json.dumps({"kind": kind_name, "url": server.url, "port": port,
                                                  "pid": proc.pid}), encoding="utf-8")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _CHILDREN.pop(proc.pid, None)
            _forget(home)
            raise ServerUnavailable(f"{kind_name} exited with {proc.returncode}:\n{server.log_tail()}", server=kind_name)
        if kind.healthy(port, home):
            return server
        time.sleep(0.5)
    stop(kind_name, home)
    raise ServerUnavailable(f"{kind_name} did not answer within {timeout:.0f} s:\n{server.log_tail()}",
                            server=kind_name)


def status(kind_name: str, home: Path) -> Server | None:
    """The server running from ``home``, or None."""
    meta = home / "server.json"
    if not meta.exists():
        return None
    info = json.loads(meta.read_text(encoding="utf-8"))
    if not _alive(info["pid"]):
        _forget(home)
        return None
    return Server(kind_name, info["url"], info["port"], info["pid"], home.resolve())


def stop(kind_name: str, home: Path, *, timeout: float = 60) -> bool:
    """Stop the server running from ``home`` and every process it started; True if one was running."""
    meta = home / "server.json"
    if not meta.exists():
        return False
    pid = json.loads(meta.read_text(encoding="utf-8"))["pid"]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if not _alive(pid):
            break
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)
    _forget(home)
    return True


def free_port(kind_name: str, preferred: int | None = None) -> int:
    """A free loopback port for this kind of server: ``preferred`` (default: the kind's usual port)
    when nothing listens there, otherwise another one the server accepts."""
    kind = KINDS[kind_name]
    candidates = [preferred or kind.default_port, *(kind.ports or [0])]
    for candidate in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ServerUnavailable(f"no free port on 127.0.0.1 for {kind_name}", server=kind_name)


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return ""


def _forget(home: Path) -> None:
    (home / "server.json").unlink(missing_ok=True)


@dataclass
class GraphCopy:
    """A graph copied into a Neo4j run folder: rows per table and relationship type, the seconds of
    each step, and the server left running on the copy."""

    rows: dict[str, int]
    nodes: int
    relationships: int
    export_s: float
    import_s: float
    schema_s: float
    server: Server

    @property
    def seconds(self) -> float:
        return self.export_s + self.import_s + self.schema_s


def copy_graph_to_neo4j(store: GraphStore, home: Path, *, port: int | None = None, heap_mib: int | None = None,
                        page_cache_mib: int | None = None, index_wait_s: float = 4 * 3600,
                        progress: Callable[[str, int], None] | None = None,
                        page_rows: int | None = None) -> GraphCopy:
    """Replace the database of the Neo4j run folder ``home`` with a copy of ``store``, then start the server
    on it and create the ontology's constraints and indexes (waiting up to ``index_wait_s`` for them).

    Three steps: the store's tables and relationships as the importer's CSV files (``home/import``,
    removed afterwards; ``progress(name, rows)`` after each; read ``page_rows`` nodes at a time, default
    ``graph.store.STORED_PAGE_ROWS``),
    ``import_neo4j``, and the first open. The
    server must not be running from ``home``. Raises GraphCopyFailed (HG-0208) or ServerUnavailable (HG-0402).
    """
    from graph.neo4j import Neo4jStore
    from graph.neo4j_import import write_import_files

    home = home.resolve()
    _stopped(home)
    work = home / "import"
    t = time.perf_counter()
    try:
        files = write_import_files(store, work, progress, page_rows=page_rows)
        export_s = time.perf_counter() - t
        t = time.perf_counter()
        import_neo4j(home, files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    server = start("neo4j", home, port=port, heap_mib=heap_mib, page_cache_mib=page_cache_mib)
    try:
        Neo4jStore(server.url, store.onto, index_wait_s=index_wait_s).close()
    except BaseException:
        stop("neo4j", home)
        raise
    return GraphCopy(dict(files.rows), files.node_count, files.relationship_count, export_s, import_s,
                     time.perf_counter() - t, server)


def import_neo4j(home: Path, files: ImportFiles, *, cache: Path | None = None, heap_mib: int = 2048,
                 timeout: float = 4 * 3600) -> tuple[int, int]:
    """Replace the database of the (stopped) Neo4j run folder ``home`` with ``files`` through
    ``neo4j-admin database import full``; returns the nodes and relationships imported.

    The importer's output is kept in ``home/import.log``. Raises GraphCopyFailed when it fails or imports
    other counts than the files hold (nothing is skipped silently).
    """
    _stopped(home)
    kind = KINDS["neo4j"]
    java = find_java(kind.java_major)
    if java is None:
        raise ServerUnavailable(requirements("neo4j") or "neo4j", server="neo4j")
    cp = classpath(kind, cache or CLASSPATH_CACHE)
    conf = home / "conf"  # the importer reads its settings from here: none beyond the defaults
    conf.mkdir(parents=True, exist_ok=True)
    (home / "data").mkdir(exist_ok=True)
    (conf / "neo4j.conf").touch()
    # The launcher makes home/data the DBMS's home, whose databases live under home/data/data.
    env = {**os.environ, "NEO4J_HOME": str(home / "data"), "NEO4J_CONF": str(conf)}
    command = [java, f"-Xmx{heap_mib}m", "-cp", cp, "org.neo4j.cli.AdminTool", "database", "import", "full",
               "neo4j", "--verbose", "--overwrite-destination=true", f"--report-file={home / 'import.report'}",
               *files.arguments()]
    log = home / "import.log"
    with open(log, "wb") as out:
        proc = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout, check=False)
    text = log.read_text(encoding="utf-8", errors="replace")
    imported = _imported(text)
    expected = (files.node_count, files.relationship_count)
    if proc.returncode != 0 or imported != expected:
        tail = "\n".join(line[-300:] for line in text.splitlines()[-30:])  # verbose progress is one long line
        raise GraphCopyFailed(f"the Neo4j importer exited with {proc.returncode} having imported {imported} "
                              f"(nodes, relationships) of {expected}; log {log}:\n{tail}", log=str(log))
    return imported


def _stopped(home: Path) -> None:
    """Refuse to replace the database of a server that runs from ``home``."""
    if status("neo4j", home) is not None:
        raise GraphCopyFailed(f"Neo4j is running from {home}: stop it first (healthgraph services stop neo4j)",
                              home=str(home))


def _imported(log: str) -> tuple[int, int] | None:
    """The importer's closing counts (``Imported: N nodes, M relationships``), or None when it did not finish."""
    found = re.search(r"IMPORT DONE.*?Imported:\s+(\d+) nodes\s+(\d+) relationships", log, re.DOTALL)
    return (int(found[1]), int(found[2])) if found else None
