//! What each subcommand does.

use crate::cli::{AdminCommand, BenchCommand, Cli, Command, ServeArgs};
use crate::config::{Config, Database, LogFormat, Overrides};
use crate::{accounts, demo};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tapestry_domain::clock::Clock;
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::knowledge::Knowledge;
use tapestry_domain::user::{Role, User};
use tapestry_domain::{measurement_cli, plan_input};
use tapestry_store::{Location, Store, StoreError};
use tapestry_web::{server, AppState};

/// The wall clock. The only place Tapestry reads the system time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(cli.config.as_deref(), &args, false).await,
        Command::Demo(args) => serve(cli.config.as_deref(), &args, true).await,
        Command::Migrate(args) => {
            let config = load_config(cli.config.as_deref(), &args)?;
            let store = open_store(&config).await?;
            store.close().await;
            println!("Migrations applied ({}).", describe(&config.database));
            Ok(())
        }
        Command::Admin(AdminCommand::Practices { serve }) => {
            let config = load_config(cli.config.as_deref(), &serve)?;
            let store = open_store(&config).await?;
            for p in store.practices().await? {
                println!("{}\t{}\t{}", p.id, p.name, p.time_zone.as_str());
            }
            store.close().await;
            Ok(())
        }
        Command::Admin(AdminCommand::CreateUser {
            practice,
            email,
            name,
            role,
            password_stdin,
            serve,
        }) => {
            let config = load_config(cli.config.as_deref(), &serve)?;
            let practice_id = practice.parse().map_err(|e| anyhow!("--practice: {e}"))?;
            let role = Role::parse(&role).map_err(|e| anyhow!("--{e}"))?;
            let store = open_store(&config).await?;
            if store.practice(practice_id).await?.is_none() {
                bail!("--practice: no practice with id {practice_id}; list them with `tapestry admin practices`");
            }
            let user = User::new(practice_id, &email, &name, role, SystemClock.now())
                .map_err(|e| anyhow!("--{e}"))?;
            let (password, generated) = if password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the password from standard input")?;
                let text = text.trim_end_matches(['\r', '\n']).to_string();
                if text.chars().count() < 8 {
                    bail!("password: must be at least 8 characters");
                }
                (text, false)
            } else {
                (accounts::random_password(), true)
            };
            store
                .insert_user(&user, Some(&accounts::hash_password(&password)?))
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => {
                        anyhow!("--email: {} is already in use", user.email.as_str())
                    }
                    other => anyhow!(other),
                })?;
            store.close().await;
            println!(
                "Created {} {} ({}) with id {}.",
                role,
                user.display_name,
                user.email.as_str(),
                user.id
            );
            if generated {
                println!("One-time password (shown once; change it at first sign-in): {password}");
            }
            Ok(())
        }
        Command::Score {
            instrument,
            answers,
            sex,
            json,
        } => {
            let registry = instruments()?;
            let report =
                measurement_cli::score_command(&registry, &instrument, &answers, sex.as_deref())?;
            print_report(json, &report, || report.summary());
            Ok(())
        }
        Command::Outcome { phq9, gad7, json } => {
            let registry = instruments()?;
            let report = measurement_cli::outcome_command(&registry, &phq9, &gad7)?;
            print_report(json, &report, || {
                let yes = |b: bool| if b { "yes" } else { "no" };
                let na = "not applicable (not a case at start)";
                format!(
                    "case at start: {}\nrecovery: {}\nreliable improvement: {}\nreliable deterioration: {}\nreliable recovery: {}",
                    yes(report.caseness_at_start),
                    report.recovery.map_or(na, yes),
                    yes(report.reliable_improvement),
                    yes(report.reliable_deterioration),
                    report.reliable_recovery.map_or(na, yes)
                )
            });
            Ok(())
        }
        Command::Change {
            instrument,
            scores,
            json,
        } => {
            let registry = instruments()?;
            let report = measurement_cli::change_command(&registry, &instrument, &scores)?;
            print_report(json, &report, || report.summary());
            Ok(())
        }
        Command::Plan { input, json } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("--input {}: cannot read", input.display()))?;
            let knowledge = Knowledge::embedded().map_err(|e| anyhow!("knowledge base: {e}"))?;
            let registry = instruments()?;
            let plan = plan_input::plan_command(&knowledge, &registry, &text)
                .map_err(|e| anyhow!("{}: {e}", input.display()))?;
            if json {
                println!("{plan}");
            } else {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Ingest {
            count,
            batch,
            serve,
        }) => {
            let config = load_config(cli.config.as_deref(), &serve)?;
            let store = open_store(&config).await?;
            crate::run::ingest(store, count, batch).await
        }
    }
}

fn instruments() -> Result<InstrumentRegistry> {
    InstrumentRegistry::embedded().map_err(|e| anyhow!("built-in instruments: {e}"))
}

/// One JSON object with `--json`, otherwise the human summary.
fn print_report<T: serde::Serialize>(json: bool, report: &T, human: impl FnOnce() -> String) {
    if json {
        println!("{}", measurement_cli::to_json(report));
    } else {
        println!("{}", human());
    }
}

fn load_config(path: Option<&Path>, args: &ServeArgs) -> Result<Config> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let overrides = Overrides {
        listen: args.listen.clone(),
        behind_proxy: args.behind_proxy,
        data_dir: args.data_dir.clone(),
    };
    Ok(Config::load(path, &env, &overrides)?)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAPESTRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn describe(db: &Database) -> String {
    match db {
        Database::Sqlite(dir) => format!("SQLite in {}", dir.display()),
        Database::Postgres(url) => {
            format!("PostgreSQL at {}", crate::config::redact_url(url.expose()))
        }
    }
}

/// Refuses, before writing anything, a data directory that is not one.
fn check_data_dir(dir: &Path) -> Result<()> {
    let shown = dir.display();
    if dir.exists() && !dir.is_dir() {
        bail!("data_dir {shown}: exists but is not a directory; point --data-dir at a directory");
    }
    let db = tapestry_store::sqlite_file(dir);
    if db.exists() {
        let mut header = [0u8; 16];
        let mut file = std::fs::File::open(&db).with_context(|| {
            format!("data_dir {shown}: cannot read tapestry.db; check its permissions")
        })?;
        let read = file
            .read(&mut header)
            .with_context(|| format!("data_dir {shown}: cannot read tapestry.db"))?;
        if read > 0 && &header[..read.min(16)] != &b"SQLite format 3\0"[..read.min(16)]
            || (read > 0 && read < 16)
        {
            bail!("data_dir {shown}: tapestry.db is not a SQLite database (corrupt or foreign file); restore it from a backup or move the directory aside");
        }
    }
    Ok(())
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let location = match &config.database {
        Database::Sqlite(dir) => {
            check_data_dir(dir)?;
            std::fs::create_dir_all(dir).with_context(|| {
                format!("data_dir {}: cannot create the directory", dir.display())
            })?;
            Location::SqliteDir(dir.clone())
        }
        Database::Postgres(url) => Location::Postgres(url.expose().to_string()),
    };
    tapestry_store::open(&location).await.map_err(|e| match (&config.database, e) {
        (Database::Postgres(url), StoreError::Backend(inner)) => anyhow!(
            "DATABASE_URL {}: cannot use the PostgreSQL database ({inner}); check the URL and that the server is running",
            crate::config::redact_url(url.expose())
        ),
        (Database::Sqlite(dir), other) => anyhow!(
            "data_dir {}: cannot open tapestry.db ({other}); if the file is damaged, restore it from a backup",
            dir.display()
        ),
        (_, other) => anyhow!(other),
    })
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow!("listen: {addr} is already in use; stop the other process or choose another address with --listen"),
        std::io::ErrorKind::PermissionDenied => anyhow!("listen: not permitted to bind {addr}; use a port above 1023"),
        _ => anyhow!("listen: cannot bind {addr}: {e}"),
    })
}

async fn serve(config_path: Option<&Path>, args: &ServeArgs, with_demo: bool) -> Result<()> {
    let started = std::time::Instant::now();
    let config = load_config(config_path, args)?;
    init_logging(config.log_format);
    let tls = match &config.tls {
        Some((cert, key)) => Some(server::tls_acceptor(cert, key)?),
        None => None,
    };
    // Bind before touching the data, so a busy port writes nothing.
    let listener = bind(config.listen).await?;
    let bound = listener
        .local_addr()
        .context("listen: cannot read the bound address")?;
    let public_url = if config.listen.port() == 0 {
        config
            .public_url
            .replace(&config.listen.to_string(), &bound.to_string())
    } else {
        config.public_url.clone()
    };
    let store = open_store(&config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut out = String::new();
    if with_demo {
        let data_dir = match &config.database {
            Database::Sqlite(dir) => dir.clone(),
            Database::Postgres(_) => config.data_dir.clone(),
        };
        let (practice, created) = demo::ensure(&store, &data_dir, clock.now()).await?;
        let logins = demo::read_logins(&data_dir)?;
        out.push_str(&format!(
            "\nTapestry demo practice {} ({}, {} synthetic clients).\nDemo logins (role, name, e-mail, password):\n{logins}",
            if created { "created" } else { "ready" },
            practice,
            demo::CLIENT_COUNT
        ));
    } else if store.count_users().await? == 0 {
        let (token, hash) = accounts::one_time_token();
        store.insert_bootstrap_token(&hash, clock.now()).await?;
        out.push_str(&format!(
            "\nThis instance has no practice owner yet. Open this one-time link to create the first one:\n  {}/bootstrap\nand enter this one-time setup token (valid once):\n  {token}\n",
            public_url
        ));
    }
    let stop_worker = crate::worker::start(&config, store.clone(), clock.clone(), &public_url)?;
    let mut state = AppState::new(
        store.clone(),
        clock,
        config.tls.is_some() || config.behind_proxy,
    );
    state.limits.request_timeout = Duration::from_secs(config.request_timeout_secs);
    state.limits.max_body_bytes = config.max_body_bytes;
    let shutting_down = state.shutting_down.clone();
    let app = tapestry_web::router(state);
    let options = server::ServeOptions {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        tls,
        drain_timeout: Duration::from_secs(10),
    };
    println!(
        "{out}\nTapestry is serving {} on {} ({}), ready in {} ms. Press Ctrl-C to stop.",
        describe(&config.database),
        public_url,
        bound,
        started.elapsed().as_millis()
    );
    let _ = std::io::stdout().flush();
    tracing::info!(listen = %config.listen, backend = store.backend().as_str(), "serving");
    let shutdown = async move {
        shutdown_signal().await;
        shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutdown requested; draining connections");
    };
    server::serve(listener, app, options, shutdown).await;
    let _ = stop_worker.send(true);
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Durable ingest of synthetic submissions; prints each id after its commit.
pub async fn ingest(store: Arc<dyn Store>, count: u64, batch: u64) -> Result<()> {
    use tapestry_domain::client::Client;
    use tapestry_domain::episode::Episode;
    use tapestry_domain::ids::ResponseId;
    use tapestry_domain::instrument::InstrumentRegistry;
    use tapestry_domain::practice::Practice;
    use tapestry_domain::scoring::{score, Answers};
    use tapestry_domain::submission::Submission;
    let registry = InstrumentRegistry::embedded().context("built-in instruments")?;
    let phq9 = registry.require("phq9").context("built-in instruments")?;
    if batch == 0 {
        bail!("--batch: must be at least 1");
    }
    let now = SystemClock.now();
    let practice = Practice::new("Ingest benchmark", "UTC", now)?;
    store.insert_practice(&practice).await?;
    let client = Client::new(practice.id, "Synthetic client", None, None, now)?;
    store.insert_client(&client).await?;
    let episode = Episode::open(practice.id, client.id, now);
    store.insert_episode(&episode).await?;
    let mut stdout = std::io::stdout().lock();
    let mut written = 0u64;
    while written < count {
        let n = batch.min(count - written);
        let mut subs: Vec<Submission> = Vec::new();
        for i in 0..n {
            let raw: Vec<Option<u8>> = (0..9)
                .map(|k| u8::try_from((written + i + k) % 4).ok())
                .collect();
            let answers = Answers::from_options(&raw);
            let score = score(phq9, &answers).context("scoring a synthetic PHQ-9")?;
            subs.push(Submission {
                id: ResponseId::random(),
                practice_id: practice.id,
                client_id: client.id,
                episode_id: episode.id,
                instrument: score.instrument,
                instrument_version: score.version,
                total: score.total.map(|p| p.0),
                answers: answers.values,
                session: 1,
                submitted_at: now,
                idempotency_key: None,
            });
        }
        if n == 1 {
            store.insert_submission(&subs[0]).await?;
        } else {
            store.insert_submissions(&subs).await?;
        }
        for s in &subs {
            writeln!(stdout, "{} {}", practice.id, s.id)?;
        }
        stdout.flush()?;
        written += n;
    }
    store.close().await;
    Ok(())
}
