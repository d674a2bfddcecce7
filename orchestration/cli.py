"""The `offerrank` command: manage the embedded database, generate demo data, run the daily graph."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bench.command import DEFAULT_CUSTOMERS, DEFAULT_OFFERS, DEFAULT_TO_SQL_ROWS, bench
from bench.world_options import add_world_options, world_params
from ml import closed_loop, data, embedded_db, load
from ml.config import PROJECT_ROOT, Settings, load_settings
from ml.generate import GeneratorParams, simulate
from ml.registry import rollback_target

if TYPE_CHECKING:
    import psycopg
    from dagster import ExecuteInProcessResult

    from ml.generate import World
    from ml.pipeline import RunSummary


def _ensure_database(settings: Settings) -> None:
    """Start the embedded server if it is the one in use and not running yet."""
    if settings.database.embedded and not embedded_db.status(settings).running:
        print(embedded_db.start(settings).describe())


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "url":
        print(settings.database.describe().split(" ")[0])
        return 0
    if not settings.database.embedded:
        print(f"PGHOST is set: offerrank uses {settings.database.describe()}; no embedded server to manage.")
        return 0 if args.action == "status" else 1
    action = {"start": embedded_db.start, "stop": embedded_db.stop, "status": embedded_db.status}[args.action]
    print(action(settings).describe())
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    params = GeneratorParams(
        customers=args.customers,
        products=args.products,
        offers=args.offers,
        days=args.days,
        seed=args.seed,
        end_date=args.end_date,
    )
    _ensure_database(settings)
    started = time.perf_counter()
    # the closed loop's start (its parameters and the history's redemptions still to come) with it
    frames, truth = closed_loop.generated_tables(params)
    with data.connect(settings) as conn, conn.transaction():
        counts = data.replace_raw_tables(conn, settings.raw_schema, frames)
        data.replace_truth_tables(conn, settings.truth_schema, truth)
    print(f"generated {params} in {time.perf_counter() - started:.1f}s into schema {settings.raw_schema!r}:")
    _print_counts(counts)
    print(STALE_FEATURES_HINT)
    return 0


# The feature marts are incremental: they only add dates, so history built from other data stays.
STALE_FEATURES_HINT = (
    "The whole raw dataset was replaced: rebuild the features of earlier dates with `offerrank run --full-refresh`."
)


def _print_counts(counts: dict[str, int], notes: dict[str, str] | None = None) -> None:
    for table, rows in counts.items():
        print(f"  {table:<18} {rows:>10,}{(notes or {}).get(table, '')}")


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    started = time.perf_counter()
    try:
        frames = load.conform(load.read_directory(args.directory))
    except load.ContractError as err:
        print(f"offerrank load: {args.directory}: {err}", file=sys.stderr)
        print(f"offerrank load: nothing loaded; schema {settings.raw_schema!r} is unchanged.", file=sys.stderr)
        return 2
    _ensure_database(settings)
    with data.connect(settings) as conn, conn.transaction():
        # One transaction: readers see the old raw data or the new, and never the new data next
        # to the ground truth of an earlier simulation.
        counts = data.replace_raw_tables(conn, settings.raw_schema, frames)
        data.clear_truth_tables(conn, settings.truth_schema)
    print(f"loaded {args.directory} in {time.perf_counter() - started:.1f}s into schema {settings.raw_schema!r}:")
    _print_counts(counts, {table: "  (no file: left empty)" for table in counts if table not in frames})
    print(STALE_FEATURES_HINT)
    return 0


def _use_dagster_home(settings: Settings) -> None:
    """Keep Dagster's run storage under OFFERRANK_HOME unless DAGSTER_HOME says otherwise."""
    from orchestration.run_history import prepare_dagster_home  # Dagster loads only for the commands that run it

    prepare_dagster_home(Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))))


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    _ensure_database(settings)
    _use_dagster_home(settings)
    # Started from a script, background jobs ignore SIGINT; dagster dev needs it to stop cleanly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.chdir(PROJECT_ROOT)  # where pyproject.toml's [tool.dagster] names the code location
    dagster = str(Path(sys.executable).parent / "dagster")
    os.execv(dagster, [dagster, "dev", "--host", args.host, "--port", str(args.port)])


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    _ensure_database(settings)
    _use_dagster_home(settings)

    from dagster import DagsterInstance, RunRequest

    from ml.config import load_model_policy
    from orchestration.project import parse_project

    parse_project()
    from orchestration.assets import DAILY_PARTITIONS, reporting_models
    from orchestration.definitions import DAILY_JOB, DAILY_JOB_WITHOUT_REPORTING, defs
    from orchestration.sensors import RETRAIN_JOB, drift_retraining_request

    run_date = args.date
    if run_date is None:
        with data.connect(settings) as conn:
            run_date = data.next_run_date(conn, settings.raw_schema)
        if run_date is None:
            print(f"offerrank run: no impressions in schema {settings.raw_schema!r}: load data first", file=sys.stderr)
            return 1
    partition = run_date.isoformat()
    if not DAILY_PARTITIONS.has_partition_key(partition):
        print(
            f"offerrank run: {partition} is not a run date: the daily partitions run from"
            f" {settings.first_date} (OFFERRANK_FIRST_DATE) to today",
            file=sys.stderr,
        )
        return 1
    run_config = {
        "ops": {
            "warehouse_models": {"config": {"full_refresh": args.full_refresh}},
            "model_registry": {"config": {"retrain": args.retrain}},
        },
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    # dbt's own output (a line per model and test) goes to a log file; the console gets one line
    # per stage from Dagster's logger.
    # the pid too: two runs started in the same second (one waiting for the other) keep their own logs
    log_path = settings.home / "logs" / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    instance = DagsterInstance.get()
    daily = defs.resolve_job_def(DAILY_JOB_WITHOUT_REPORTING if args.no_reporting else DAILY_JOB)
    with log_path.open("w") as log, contextlib.redirect_stdout(log):
        result = daily.execute_in_process(
            run_config=run_config, instance=instance, partition_key=partition, raise_on_error=False
        )
    _print_run(settings, result.run_id, result.success, log_path)
    if not result.success:
        print(f"offerrank run: {_failure(result)}", file=sys.stderr)
        return 1
    # Without the Dagster daemon, do what its drift sensor would (orchestration/sensors.py).
    registry = next(
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key.path == ["ml", "model_registry"]
    )
    decision = drift_retraining_request(
        registry.metadata, partition, result.run_id, load_model_policy().drift_threshold
    )
    if not isinstance(decision, RunRequest):
        return 0
    print(f"\nthe drift sensor's retraining ({decision.tags['offerrank/trigger']}):")
    retraining = defs.resolve_job_def(RETRAIN_JOB)
    with log_path.open("a") as log, contextlib.redirect_stdout(log):
        retrained = retraining.execute_in_process(
            run_config={**decision.run_config, "loggers": run_config["loggers"]},
            instance=instance,
            partition_key=partition,
            tags=decision.tags,
            # with --no-reporting, all of it but the reporting marts
            asset_selection=[
                key for key in retraining.asset_layer.executable_asset_keys if key not in reporting_models.keys
            ]
            if args.no_reporting
            else None,
            raise_on_error=False,
        )
    _print_run(settings, retrained.run_id, retrained.success, log_path)
    if not retrained.success:
        print(f"offerrank run: the retraining failed: {_failure(retrained)}", file=sys.stderr)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    _ensure_database(settings)
    with data.connect(settings) as conn:
        stored = data.read_generator_params(conn, settings.truth_schema)
        last = data.last_simulated_day(conn, settings.truth_schema) if stored else None
    if stored is None:
        print(
            f"offerrank simulate: schema {settings.truth_schema!r} holds no generator parameters: the raw data was"
            " not made by `offerrank generate` (or by an older version of it), and the simulator needs the world's"
            " latent truth. Run `offerrank generate` first.",
            file=sys.stderr,
        )
        return 1
    world = simulate(GeneratorParams(**stored))
    day = (last or world.params.end_date) + dt.timedelta(days=1)
    for _ in range(args.days):
        # the day's recommendations, by the daily run itself (retraining by the model policy)
        run = argparse.Namespace(date=day, full_refresh=False, retrain=False, no_reporting=args.no_reporting)
        if cmd_run(run, settings) != 0:
            print(
                f"offerrank simulate: the run for {day} failed; simulated days end at {day - dt.timedelta(days=1)}",
                file=sys.stderr,
            )
            return 1
        started = time.perf_counter()
        with data.connect(settings) as conn:
            simulated, mix = _simulate_day(conn, settings, world, day)
        summary = simulated.summary.iloc[0]
        print(
            f"\nsimulated {day}: {summary['impressions']:,} impressions, {summary['redemptions_released']:,}"
            f" redemptions released ({summary['redemptions_pending']:,} pending), {summary['orders']:,} orders,"
            f" {summary['new_offers']} new offers in {time.perf_counter() - started:.1f}s"
            + f"; customers served per variant: {', '.join(f'{v} {n:,}' for v, n in mix.items()) or 'none'}"
        )
        day += dt.timedelta(days=1)
    return 0


def _simulate_day(
    conn: psycopg.Connection, settings: Settings, world: World, day: dt.date
) -> tuple[closed_loop.SimulatedDay, dict[str, int]]:
    """Draw day `day` from the warehouse's state and append it in one transaction; with the
    customers served per experiment variant."""
    frames = data.read_loop_state(conn, settings.raw_schema, settings.truth_schema, settings.ml_schema, day)
    state = closed_loop.loop_state(frames, data.raw_row_counts(conn, settings.raw_schema))
    simulated = closed_loop.simulate_day(world, day, state)
    truth = {"impression_outcomes": simulated.impression_outcomes, "simulated_days": simulated.summary}
    data.append_simulated_day(
        conn, settings.raw_schema, settings.truth_schema, simulated.raw, truth, simulated.pending_redemptions
    )
    return simulated, data.served_variant_mix(conn, settings.ml_schema, day)


def _failure(result: ExecuteInProcessResult) -> str:
    """Why a run failed, in a line: the first failure's innermost error, its step or resource first."""
    for event in result.all_events:
        if event.is_step_failure or event.event_type_value == "RESOURCE_INIT_FAILURE":
            error = event.event_specific_data.error
            while error.cause is not None:
                error = error.cause
            return f"{event.step_key or 'resources'}: {error.message.strip()}"
    return "see the dbt output and the Dagster logs above"


def _print_run(settings: Settings, run_id: str, success: bool, log_path: Path) -> None:
    from ml.pipeline import run_summary

    summary = run_summary(settings, run_id)
    print(f"\nrun {run_id} for {summary.run_date}: {'success' if success else 'FAILED'}")
    print(f"dbt output: {log_path}")
    print("stages:")
    for stage in summary.stages:
        # a failed dbt build's message lists rules and rows, one a line: under the stage's columns
        message = f"  {stage['message']}".replace("\n", "\n" + " " * 34) if stage["message"] else ""
        print(f"  {stage['step']:<12} {stage['status']:<8} {stage['seconds'] or 0:7.1f}s{message}")
    print(f"tables in schema {settings.ml_schema!r} (rows for {summary.run_date} where keyed by date):")
    for table, rows in summary.table_rows.items():
        print(f"  {table:<28} {rows:>10,}")
    _print_metrics(summary)
    _print_drift(summary)
    _print_shadow(summary)


def _print_metrics(summary: RunSummary) -> None:
    """The validation window's metrics of every scorer of the run date, champion first, oracle last."""
    from ml.pipeline import ORACLE_MODEL_ID  # the model libraries load only for commands that need them

    if not summary.validation_metrics:
        return
    scorers = sorted(
        summary.validation_metrics,
        key=lambda name: (name != summary.champion_id, name == ORACLE_MODEL_ID, name),
    )
    reported = {m for name in scorers for m in summary.validation_metrics[name]}
    metrics = [metric for metric in LISTED_METRICS if metric in reported]
    print(f"validation window of {summary.run_date} (champion: {summary.champion_id or 'none, heuristic ranking'}):")
    widths = [max(10, len(metric) + 2) for metric in metrics]
    print(f"  {'scorer':<34}" + "".join(f"{metric:>{width}}" for metric, width in zip(metrics, widths, strict=True)))
    for name in scorers:
        values = summary.validation_metrics[name]
        cells = "".join(f"{_cell(values.get(metric)):>{width}}" for metric, width in zip(metrics, widths, strict=True))
        print(f"  {name + (' *' if name == summary.champion_id else ''):<34}{cells}")
    served = summary.served_metrics.get(summary.champion_id or "", {})
    if "ndcg@5" in served:
        raw = summary.validation_metrics[summary.champion_id].get("ndcg@5")
        print(f"  the champion's lists as served (re-ranked): ndcg@5 {_cell(served['ndcg@5'])}, raw order {_cell(raw)}")


def _print_drift(summary: RunSummary) -> None:
    """The run date's largest feature drifts in the signal against the champion's training date, and the threshold."""
    from ml.config import load_model_policy

    threshold = load_model_policy().drift_threshold
    drifts = summary.largest_drifts
    if drifts.empty:
        print(f"feature drift of {summary.run_date}: not measured (retraining above PSI {threshold})")
        return
    print(
        f"feature drift of {summary.run_date} against the candidates of {drifts['reference_date'].iloc[0]},"
        f" champion {drifts['model_id'].iloc[0]}'s training date"
        f" (retraining above PSI {threshold}):"
    )
    print(f"  {'feature':<34}{'psi':>10}{'ks':>10}  in signal")
    for row in drifts.itertuples():
        signal = "yes" if row.is_in_signal else "no (offer-level)"
        print(f"  {row.feature:<34}{_cell(row.psi):>10}{_cell(row.ks):>10}  {signal}")


def _print_shadow(summary: RunSummary) -> None:
    """The shadow model's agreement with the served lists, when one ranked the run date."""
    agreement = summary.shadow_agreement
    if agreement.empty:
        return
    overall = agreement.set_index("variant")
    k, model_id = int(overall["k"].iloc[0]), overall["model_id"].iloc[0]
    by_variant = ", ".join(
        f"{variant} {_cell(row.overlap_at_k)} ({row.customers:,})"
        for variant, row in overall.drop(index="all").iterrows()
    )
    everyone = overall.loc["all"]
    print(
        f"shadow {model_id} against the served lists of {summary.run_date}: overlap@{k}"
        f" {_cell(everyone['overlap_at_k'])} over {everyone['customers']:,} customers ({by_variant})"
    )


def _cell(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


# The metrics shown per model by `offerrank model list` and per scorer in the run summary; every
# metric is in ml.eval_metrics.
LISTED_METRICS = ("ndcg@5", "ndcg@10", "map", "precision@5", "recall@5", "margin_lift@5", "roc_auc", "log_loss", "ece")


def cmd_model(args: argparse.Namespace, settings: Settings) -> int:
    _ensure_database(settings)
    schema = settings.ml_schema
    with data.connect(settings) as conn:
        data.ensure_ml_tables(conn, schema, settings.reader_role)
        if args.action == "list":
            models = data.list_models(conn, schema)
            if not models.empty:  # the validation metrics as columns, not a JSON blob
                metrics = pd.DataFrame(models.pop("metrics").tolist(), index=models.index)
                models = models.join(metrics[[m for m in LISTED_METRICS if m in metrics]].astype(float).round(4))
            with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 60):
                print(models.to_string(index=False) if not models.empty else "no models registered")
                history = data.promotion_history(conn, schema)
                if not history.empty:
                    print("\npromotions:")
                    print(history.to_string(index=False))
            return 0
        champion = data.champion_model(conn, schema)
        champion_id = champion.model_id if champion else None
        target = args.model_id
        if args.action == "rollback" and target is None:
            target = rollback_target(data.promotion_history(conn, schema), champion_id)
            if target is None:
                print(f"offerrank model rollback: champion {champion_id} replaced no earlier model", file=sys.stderr)
                return 1
        if target is None:
            print("offerrank model promote: name the MODEL_ID to promote", file=sys.stderr)
            return 1
        action = "manual_promote" if args.action == "promote" else "rollback"
        reason = args.reason or f"{args.action} by hand"
        try:
            changed = data.promote_model(conn, schema, target, action=action, reason=reason)
        except LookupError as err:
            print(f"offerrank model {args.action}: {err}", file=sys.stderr)
            return 1
        print(f"{target} {'is now' if changed else 'was already'} the champion (previously {champion_id})")
        return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    _ensure_database(settings)
    from ml.config import load_model_policy
    from ml.features import DbtManifest
    from ml.pipeline import StageRun, write_report

    stage = StageRun(settings, run_id="report", manifest=DbtManifest.load())
    try:
        path = write_report(stage, load_model_policy(), args.date, args.output)
    except LookupError as err:
        print(f"offerrank report: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def cmd_evaluate_offline(args: argparse.Namespace, settings: Settings) -> int:
    _ensure_database(settings)
    _use_dagster_home(settings)

    import psycopg
    from dagster import DagsterInstance

    from ml.features import DbtManifest
    from ml.off_policy import ESTIMATORS
    from ml.pipeline import run_date
    from orchestration.project import parse_project

    parse_project()
    from orchestration.definitions import OFF_POLICY_JOB, defs

    try:
        with data.connect(settings) as conn:
            as_of = run_date(conn, DbtManifest.load())  # the last daily run's date: its marts and champion
    except (LookupError, psycopg.errors.UndefinedTable):
        print("offerrank evaluate-offline: no daily run built the marts yet: run `offerrank run`", file=sys.stderr)
        return 1
    log_path = settings.home / "logs" / f"evaluate-offline-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log, contextlib.redirect_stdout(log):
        result = defs.resolve_job_def(OFF_POLICY_JOB).execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            instance=DagsterInstance.get(),
            partition_key=as_of.isoformat(),
            raise_on_error=False,
        )
    if not result.success:
        print(f"offerrank evaluate-offline: {_failure(result)} (dbt output: {log_path})", file=sys.stderr)
        return 1
    with data.connect(settings) as conn:
        champion = data.champion_model(conn, settings.ml_schema)
        rows = data.off_policy_estimates(conn, settings.ml_schema, as_of, champion.model_id, ESTIMATORS)
    _print_estimates(rows, champion.model_id, as_of)
    return 0


def _print_estimates(rows: pd.DataFrame, model_id: str, as_of: dt.date) -> None:
    """The off-policy estimate of the model's redemption rate per impression next to the on-policy rates."""
    print(f"redemption rate per impression of {model_id}'s lists (run date {as_of}), estimated from logged data:")
    print(
        f"  {'estimator':<18}{'value':>8}  {'interval':<18}{'days':<24}{'visits':>8}{'impressions':>13}"
        f"{'matched':>9}{'ess':>9}"
    )
    for row in rows.itertuples():
        interval = f"[{_cell(row.ci_low)}, {_cell(row.ci_high)}]"
        days = f"{row.window_start} .. {row.window_end}"
        print(
            f"  {row.estimator:<18}{_cell(row.value):>8}  {interval:<18}{days:<24}{row.visits:>8,}"
            f"{row.logged_impressions:>13,}{row.matched_impressions:>9,}{row.effective_sample_size:>9.1f}"
        )
    if len(rows):
        confidence, samples = rows["confidence"].iloc[0], rows["bootstrap_samples"].iloc[0]
        print(f"  intervals: {confidence:.0%} percentile bootstrap over customers, {samples:,} resamples")
    if len(rows) and rows["overlaps_training"].iloc[0]:
        print("  the window's impressions trained or tuned this model: the off-policy rows are optimistic")
    if "online_treatment" not in set(rows["estimator"]):
        print("  no online result: run `offerrank simulate --days N` (OFFERRANK_TREATMENT_SHARE < 1 keeps a control)")


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    _ensure_database(settings)
    return bench(settings, world_params(args), args.to_sql_rows, args.json)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offerrank", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="manage the embedded PostgreSQL server")
    db.add_argument("action", choices=["start", "stop", "status", "url"])
    db.set_defaults(handler=cmd_db)

    generate = commands.add_parser("generate", help="write a synthetic retail dataset into the raw schema")
    defaults = GeneratorParams()
    generate.add_argument("--customers", type=int, default=defaults.customers)
    generate.add_argument("--products", type=int, default=defaults.products)
    generate.add_argument("--offers", type=int, default=defaults.offers)
    generate.add_argument("--days", type=int, default=defaults.days, help="days of history")
    generate.add_argument("--seed", type=int, default=defaults.seed)
    generate.add_argument("--end-date", type=_date, default=defaults.end_date, help="last day of the data")
    generate.set_defaults(handler=cmd_generate)

    load_ = commands.add_parser(
        "load", help="check a directory of CSV or parquet files against the raw data contract and load it"
    )
    load_.add_argument("directory", type=Path, help="one <table>.csv or <table>.parquet per table")
    load_.set_defaults(handler=cmd_load)

    dev = commands.add_parser("dev", help="open the Dagster UI on the code location (dagster dev)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(handler=cmd_dev)

    run = commands.add_parser("run", help="materialize the whole daily graph for one date through Dagster")
    run.add_argument(
        "--date", type=_date, default=None, help="as-of date (default: the day after the latest impression)"
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental feature marts over all history (after new raw data or a feature change)",
    )
    run.add_argument(
        "--retrain", action="store_true", help="train new models today whatever the retraining policy says"
    )
    run.add_argument(
        "--no-reporting",
        action="store_true",
        help="leave the reporting marts as they are (when running many dates: build them once, after the last)",
    )
    run.set_defaults(handler=cmd_run)

    simulate_ = commands.add_parser(
        "simulate",
        help="advance the generated world N days: each day the daily run's recommendations are what customers see",
    )
    simulate_.add_argument("--days", type=_positive, required=True, help="days to simulate (at least 1)")
    simulate_.add_argument("--no-reporting", action="store_true", help="passed to each day's run")
    simulate_.set_defaults(handler=cmd_simulate)

    report = commands.add_parser("report", help="write the HTML report of a run date: plots of its quality")
    report.add_argument("--date", type=_date, default=None, help="the run date (default: the last one dbt built)")
    report.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write it (default: $OFFERRANK_HOME/reports/report-DATE.html)",
    )
    report.set_defaults(handler=cmd_report)

    evaluate = commands.add_parser(
        "evaluate-offline",
        help="estimate the champion's redemption rate from the logged impressions (IPS, SNIPS), next to the online one",
    )
    evaluate.set_defaults(handler=cmd_evaluate_offline)

    bench_ = commands.add_parser(
        "bench",
        help="benchmark every stage at a scale, beside baselines and limits (replaces the warehouse's data)",
    )
    add_world_options(bench_, customers=DEFAULT_CUSTOMERS, offers=DEFAULT_OFFERS)
    bench_.add_argument(
        "--to-sql-rows", type=_positive, default=DEFAULT_TO_SQL_ROWS, help="rows of pandas' to_sql sample (it is slow)"
    )
    bench_.add_argument(
        "--json", type=Path, default=None, help="where to write the figures (default: under $OFFERRANK_HOME/bench)"
    )
    bench_.set_defaults(handler=cmd_bench)

    model = commands.add_parser("model", help="list the registered models, promote one, or roll back")
    model.add_argument("action", choices=["list", "promote", "rollback"])
    model.add_argument(
        "model_id", nargs="?", help="the model to promote or roll back to (rollback default: the previous champion)"
    )
    model.add_argument("--reason", help="why, kept in ml.model_promotions")
    model.set_defaults(handler=cmd_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, load_settings())
    except (ConnectionError, embedded_db.EmbeddedServerError) as err:
        print(f"offerrank: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
