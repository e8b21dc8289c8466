"""The `medallion` command: run every layer for a range of days, the sample source system and the demo."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta

from medallion_assets.engine.metadata import MetadataError
from medallion_assets.engine.storage.paths import DATA_DIR_ENV, resolve_data_dir


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return number


def _sizing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same sample")
    parser.add_argument("--days", type=_positive, default=14, help="daily extracts to simulate (default 14)")
    parser.add_argument("--customers", type=_positive, default=2_000, help="customers at the end (default 2,000)")
    parser.add_argument("--order-lines", type=_positive, default=20_000, help="order lines at the end (default 20,000)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medallion", description=__doc__)
    parser.add_argument(
        "--data-dir", help=f"data root (default: ${DATA_DIR_ENV}, else data/ of the checkout)", default=None
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="generate the sample if absent, then run every layer for every day")
    _sizing(demo)

    run = commands.add_parser(
        "run", help="run every layer (medallion_daily) for each day from --from to --to, in date order"
    )
    run.add_argument("--from", dest="first", type=date.fromisoformat, required=True, help="first day (YYYY-MM-DD)")
    run.add_argument(
        "--to", dest="last", type=date.fromisoformat, default=None, help="last day (YYYY-MM-DD; default yesterday)"
    )

    plan = commands.add_parser(
        "plan", help="what the metadata changes in the stored tables (exit 0: nothing, 2: changes, 1: a metadata error)"
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (for CI)")

    sample = commands.add_parser("sample", help="the sample source system")
    sample_commands = sample.add_subparsers(dest="sample_command", required=True)
    generate = sample_commands.add_parser("generate", help="write the sample database and N days of landing files")
    _sizing(generate)
    generate.add_argument(
        "--start-date", type=date.fromisoformat, default=None, help="first day (default: --days before today, so the last is yesterday)"
    )
    advance = sample_commands.add_parser("advance", help="move the source systems forward by N days")
    advance.add_argument("--days", type=_positive, default=1)
    _add_sources_commands(commands)
    pools = commands.add_parser("pools", help="the per-table concurrency pools of a deployed instance")
    pools_commands = pools.add_subparsers(dest="pools_command", required=True)
    pools_commands.add_parser("init", help="create every table pool on the instance at DAGSTER_HOME (run once per deploy)")
    return parser


def _run_pools_init() -> None:
    import dagster as dg

    from medallion_assets.common.pools import initialize_pools, table_pools
    from medallion_assets.definitions import build_definitions

    pools = table_pools(build_definitions())
    with dg.DagsterInstance.get() as instance:
        limit = initialize_pools(instance=instance, pools=pools)
    if limit is None:
        print("the instance sets no concurrency: pools: default_limit; nothing to create")
    else:
        print(f"{len(pools)} table pools, limit {limit} each")


# --- `medallion sources discover` ---------------------------------------------------------------


def _add_sources_commands(commands) -> None:
    sources = commands.add_parser("sources", help="database sources")
    sources_commands = sources.add_subparsers(dest="sources_command", required=True)
    discover = sources_commands.add_parser(
        "discover", help="introspect a source's database and print starter source and base metadata"
    )
    discover.add_argument("source", help="a source in metadata/sources/ whose connection names url_env")
    discover.add_argument("--schema", default=None, help="database schema to read (default: the connection's default)")
    discover.add_argument(
        "--url-env", default=None, help="read the URL from this environment variable instead (a source not yet in metadata)"
    )


def _run_sources_discover(args) -> None:
    from medallion_assets.engine.landing.database import SqlSource
    from medallion_assets.engine.landing.discover import discover_source, starter_metadata
    from medallion_assets.engine.landing.extract import SourceUnavailable
    from medallion_assets.engine.landing.sources import load_sources

    url_env = args.url_env
    if url_env is None:
        system = load_sources().get(args.source)
        url_env = getattr(system.connection, "url_env", None) if system else None
        if url_env is None:
            raise SourceUnavailable(f"source {args.source!r} has no database connection in its metadata; give --url-env")
    url = os.environ.get(url_env)
    if not url:
        raise SourceUnavailable(f"source {args.source!r}: set the environment variable {url_env} to its database URL")
    with SqlSource(source=args.source, url=url) as database:
        tables = database.discover(lambda: discover_source(database, schema=args.schema))
    source_yaml, base_yaml = starter_metadata(args.source, url_env, tables)
    print(source_yaml)
    print("---")
    print(base_yaml, end="")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from medallion_assets.common.instance_url import InstanceUrlError, check_instance_url

    try:
        check_instance_url()
        if args.command in ("run", "demo", "plan"):
            from medallion_assets.engine.catalog import load_project_metadata

            load_project_metadata()  # a mistake in the metadata stops the command before any run
        return _dispatch(args)
    except (MetadataError, InstanceUrlError) as exc:
        print(f"medallion: error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args) -> int:
    if args.data_dir:
        os.environ[DATA_DIR_ENV] = str(resolve_data_dir(args.data_dir))
    data_dir = resolve_data_dir()
    from medallion_assets.engine.landing.database import SourceReadError
    from medallion_assets.sample import SampleError, advance_sample, default_sample_start, generate_sample

    try:
        if args.command == "plan":
            from medallion_assets.demo import dagster_home
            from medallion_assets.orchestration.plan import plan_project, render

            dagster_home()
            plan = plan_project(data_dir)
            render(plan, as_json=args.json)
            return 2 if plan.changed else 0
        if args.command == "sources":
            _run_sources_discover(args)
        elif args.command == "pools":
            _run_pools_init()
        elif args.command == "demo":
            from medallion_assets.demo import run_demo

            runs = run_demo(data_dir, seed=args.seed, days=args.days, customers=args.customers, order_lines=args.order_lines)
            return 0 if all(r.success for r in runs) else 1
        elif args.command == "run":
            from medallion_assets.demo import run_range

            last = args.last or date.today() - timedelta(days=1)
            if last < args.first:
                print(f"medallion: error: --to {last} is before --from {args.first}", file=sys.stderr)
                return 2
            runs = run_range(data_dir, first=args.first, last=last)
            return 0 if all(r.success for r in runs) else 1
        elif args.sample_command == "generate":
            days = generate_sample(
                data_dir,
                seed=args.seed,
                days=args.days,
                customers=args.customers,
                order_lines=args.order_lines,
                start_date=args.start_date or default_sample_start(args.days),
            )
            print(f"sample written to {data_dir}: {len(days)} days, {days[0]} .. {days[-1]}")
        else:
            days = advance_sample(data_dir, days=args.days)
            print(f"source moved forward to {days[-1]}; materialize its partition to land it")
    except (SampleError, SourceReadError, FileExistsError) as exc:
        print(f"medallion: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
