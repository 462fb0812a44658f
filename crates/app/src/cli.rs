//! The command line: every subcommand documented in `tapestry --help`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "tapestry",
    version,
    about = "Tapestry: integrative, measurement-based online therapy",
    long_about = "Tapestry runs a therapy practice: intake, measures, formulation, phased plans, online sessions.\n\nData lives in ./tapestry-data (SQLite) unless DATABASE_URL points at PostgreSQL.\nConfiguration: defaults, then tapestry.toml, then TAPESTRY_* environment variables, then flags."
)]
pub struct Cli {
    /// Path to a tapestry.toml configuration file (default: ./tapestry.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080). Non-loopback needs TLS or --behind-proxy.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// A TLS-terminating reverse proxy is in front of Tapestry.
    #[arg(long)]
    pub behind_proxy: bool,
    /// Data directory for the embedded SQLite database and the key file.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an instance. On an empty database, prints a one-time link to create the first practice owner.
    Serve(ServeArgs),
    /// Start with a demo practice (seeded once; running again reuses it) and print the demo logins.
    Demo(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(ServeArgs),
    /// Administration tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Benchmark and durability tools.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Score one questionnaire response, e.g. `tapestry score phq9 1,2,0,3,1,0,2,1,0 --json` (`-` = missing answer, `na` = not applicable).
    Score {
        /// Instrument id: phq9, phq2, phq8, gad7, gad2, phq15, pcl5, k10, audit_c, core10, dass21, wsas, isi, …
        instrument: String,
        /// Answers in item order, comma-separated.
        #[arg(allow_hyphen_values = true)]
        answers: String,
        /// Sex, for instruments with sex-specific cut-offs (AUDIT-C): male or female.
        #[arg(long)]
        sex: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// NHS Talking Therapies paired outcome from first and last PHQ-9 and GAD-7 totals, e.g. `--phq9 18,7 --gad7 15,6`.
    Outcome {
        /// First and last PHQ-9 totals.
        #[arg(long, allow_hyphen_values = true)]
        phq9: String,
        /// First and last GAD-7 totals.
        #[arg(long, allow_hyphen_values = true)]
        gad7: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Session-by-session change from intake: reliable and clinically significant change, sudden gains, not-on-track.
    Change {
        /// Instrument id, e.g. phq9.
        instrument: String,
        /// Totals in session order, first = intake, e.g. 20,19,19,18,18,17.
        #[arg(long, allow_hyphen_values = true)]
        scores: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Matching clients to clinicians.
    #[command(subcommand)]
    Match(MatchCommand),
    /// Build a phased, integrative treatment plan from a case file (schema in docs/plan-engine.md).
    Plan {
        /// The case as JSON.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user in a practice. A strong random password is printed once, unless --password-stdin.
    CreateUser {
        /// Practice id (see `tapestry admin practices`).
        #[arg(long)]
        practice: String,
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// One of client, clinician, supervisor, practice_admin, practice_owner, operator.
        #[arg(long)]
        role: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// List practices with their ids.
    Practices {
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durably ingest synthetic questionnaire submissions, printing each id once its commit is acknowledged.
    Ingest {
        /// How many submissions to write.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// 1 = one commit per submission; N > 1 = group commit of up to N submissions or 1 ms.
        #[arg(long, default_value_t = 1)]
        batch: u64,
        /// Synthetic clients (each with one episode) the submissions are spread over.
        #[arg(long, default_value_t = 100)]
        clients: u64,
        /// Seconds between a client's submissions (one round of all clients per interval):
        /// 604800 = weekly, as in session-by-session measurement; 0 = every round at once.
        #[arg(long, default_value_t = 604_800)]
        round_seconds: u64,
        /// SQLite `synchronous` setting: full (the product's setting) or normal (B3 comparison only).
        #[arg(long, default_value = "full")]
        synchronous: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum MatchCommand {
    /// Optimal batch assignment under capacities: most clients matched first, then the highest total score.
    /// Input: {"clients":N,"capacities":[c0,…],"edges":[[client,clinician,score],…]}.
    Assign {
        /// The instance as JSON.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Print one JSON object (the output is always JSON; kept for symmetry with other commands).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit hash chain (and check signed checkpoints); prints the first broken entry and exits non-zero if any.
    Verify {
        /// Signed checkpoints exported earlier (default: <data_dir>/audit-checkpoints.txt if present). Keep a copy off this machine.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Append a signed checkpoint of the newest audit entry to a file (the server also does this every 15 minutes and at shutdown).
    Checkpoint {
        /// Where to append (default: <data_dir>/audit-checkpoints.txt).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new master key to the key file and re-wrap every data key under it.
    Rotate {
        /// Also create new per-practice data keys and re-encrypt every sealed value.
        #[arg(long)]
        data_keys: bool,
        #[command(flatten)]
        serve: ServeArgs,
    },
}
