namespace Training.Orchestrator.State;

/// <summary>
/// The run-state schema as numbered migrations. A database records the versions applied in <c>schema_version</c>;
/// opening applies the missing ones in one transaction, and refuses a database newer than this program. Append new
/// migrations; never edit one that has shipped.
/// </summary>
internal static class StateSchema
{
    /// <summary>The SQL of each migration; <c>{identity}</c> is the dialect's auto-numbered primary key column type.</summary>
    public static readonly IReadOnlyList<string[]> Migrations =
    [
        // 1: runs, trials with their latest status, events (the metrics log), attempts, checkpoints.
        [
            """
            CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                experiment TEXT NOT NULL,
                source TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                storage TEXT NULL,
                stages_json TEXT NULL,
                cancel_requested_ms BIGINT NULL,
                version BIGINT NOT NULL DEFAULT 0)
            """,
            """
            CREATE TABLE trials (
                run_id TEXT NOT NULL,
                trial_id TEXT NOT NULL,
                trial_index INTEGER NOT NULL,
                stage TEXT NULL,
                overrides_json TEXT NOT NULL,
                init_from_stage TEXT NULL,
                init_from_pick TEXT NULL,
                teacher_from_stage TEXT NULL,
                teacher_from_pick TEXT NULL,
                state TEXT NOT NULL,
                step BIGINT NOT NULL,
                total_steps BIGINT NOT NULL,
                parameters BIGINT NOT NULL,
                loss DOUBLE PRECISION NULL,
                eval_loss DOUBLE PRECISION NULL,
                eval_accuracy DOUBLE PRECISION NULL,
                eval_exact_match DOUBLE PRECISION NULL,
                tokens_per_second DOUBLE PRECISION NULL,
                last_checkpoint TEXT NULL,
                error TEXT NULL,
                initialized_from TEXT NULL,
                updated_ms BIGINT NOT NULL,
                PRIMARY KEY (run_id, trial_id))
            """,
            """
            CREATE TABLE events (
                seq {identity},
                run_id TEXT NOT NULL,
                trial_id TEXT NOT NULL,
                type TEXT NOT NULL,
                step BIGINT NOT NULL,
                time_ms BIGINT NOT NULL,
                body TEXT NOT NULL)
            """,
            "CREATE INDEX events_by_trial ON events (run_id, trial_id, seq)",
            """
            CREATE TABLE attempts (
                run_id TEXT NOT NULL,
                trial_id TEXT NOT NULL,
                number INTEGER NOT NULL,
                generation INTEGER NOT NULL,
                workers TEXT NOT NULL,
                started_ms BIGINT NOT NULL,
                start_step BIGINT NULL,
                resumed_from TEXT NULL,
                ended_ms BIGINT NULL,
                end_step BIGINT NULL,
                outcome TEXT NULL,
                reason TEXT NULL,
                PRIMARY KEY (run_id, trial_id, number))
            """,
            """
            CREATE TABLE checkpoints (
                run_id TEXT NOT NULL,
                trial_id TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                step BIGINT NOT NULL,
                location TEXT NULL,
                time_ms BIGINT NOT NULL,
                PRIMARY KEY (run_id, trial_id, checkpoint_id))
            """,
        ],
        // 2: the newer checkpoints an attempt skipped on restore because they failed verification, with the reasons.
        [
            "ALTER TABLE attempts ADD COLUMN skipped TEXT NULL",
        ],
    ];

    public static int Latest => Migrations.Count;
}
