//! What each subcommand does.

use crate::cli::{
    AdminCommand, AuditCommand, BenchCommand, Cli, Command, KeysCommand, MatchCommand, ServeArgs,
};
use crate::config::{Config, Database, LogFormat, Overrides};
use crate::{accounts, demo, jobs};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tapestry_domain::clock::Clock;
use tapestry_domain::instrument::{Availability, InstrumentRegistry};
use tapestry_domain::knowledge::Knowledge;
use tapestry_domain::matching::assign::assign_command;
use tapestry_domain::user::{Role, User};
use tapestry_domain::{measurement_cli, plan_input};
use tapestry_store::audit_chain::{self, Checkpoint};
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
        Command::Match(MatchCommand::Assign { input, json }) => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("--input {}: cannot read", input.display()))?;
            let result = assign_command(&text).map_err(|e| anyhow!("{}: {e}", input.display()))?;
            if json {
                println!("{result}");
            } else {
                println!("{}", serde_json::to_string_pretty(&result)?);
            }
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { checkpoints, serve }) => {
            let config = load_config(cli.config.as_deref(), &serve)?;
            let store = open_store(&config).await?;
            let events = store.audit_events().await?;
            store.close().await;
            let path = checkpoints.unwrap_or_else(|| checkpoint_file(&config));
            let lines = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => bail!("--checkpoints {}: {e}", path.display()),
            };
            let mut marks = Vec::new();
            for (n, line) in lines
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                marks.push(Checkpoint::parse_line(line).ok_or_else(|| {
                    anyhow!(
                        "--checkpoints {} line {}: not a checkpoint",
                        path.display(),
                        n + 1
                    )
                })?);
            }
            let key = load_keys(&config)?;
            match audit_chain::verify_with_checkpoints(&events, &marks, key.audit_secret()) {
                Ok(()) => {
                    println!(
                        "Audit chain intact: {} entries verified, {} signed checkpoints matched.",
                        events.len(),
                        marks.len()
                    );
                    Ok(())
                }
                Err(b) => bail!(
                    "audit chain broken at entry {} ({:?}); the log has been edited, deleted from, reordered or cut short; compare with a backup and the off-box checkpoints",
                    b.first_bad_seq,
                    b.reason
                ),
            }
        }
        Command::Audit(AuditCommand::Checkpoint { out, serve }) => {
            let config = load_config(cli.config.as_deref(), &serve)?;
            let store = open_store(&config).await?;
            let path = out.unwrap_or_else(|| checkpoint_file(&config));
            let written = write_checkpoint(&store, &config, &path).await?;
            store.close().await;
            match written {
                Some(seq) => println!("Checkpoint of entry {seq} appended to {}.", path.display()),
                None => println!("The audit log is empty; nothing to checkpoint."),
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { data_keys, serve }) => {
            let config = load_config(cli.config.as_deref(), &serve)?;
            let store = open_store(&config).await?;
            let mut key_file = tapestry_store::crypto::load_or_create_key_file(&config.key_file)
                .map_err(|e| anyhow!("key_file: {e}"))?;
            let new_id = key_file.add_master_key();
            // Save first: the new master key must exist before anything is
            // wrapped under it (old master keys stay until retired).
            tapestry_store::crypto::save_key_file(&config.key_file, &key_file)
                .map_err(|e| anyhow!("key_file: {e}"))?;
            let report = store.rotate_keys(&key_file, data_keys).await?;
            store.close().await;
            println!(
                "Master key {new_id} is current: {} data keys re-wrapped, {} new data keys, {} values re-encrypted.",
                report.rewrapped, report.new_data_keys, report.reencrypted
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Ingest {
            count,
            batch,
            clients,
            round_seconds,
            synchronous,
            serve,
        }) => {
            let config = load_config(cli.config.as_deref(), &serve)?;
            let store = match (synchronous.as_str(), &config.database) {
                ("full", _) => open_store(&config).await?,
                ("normal", Database::Sqlite(dir)) => {
                    check_data_dir(dir)?;
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("data_dir {}: cannot create the directory", dir.display())
                    })?;
                    let sqlite = tapestry_store::measurement::open_sqlite_for_benchmark(
                        &tapestry_store::sqlite_file(dir),
                        false,
                    )
                    .await?;
                    sqlite.migrate().await?;
                    Arc::new(sqlite) as Arc<dyn Store>
                }
                ("normal", Database::Postgres(_)) => {
                    bail!("--synchronous normal: only for the SQLite data directory")
                }
                (other, _) => bail!("--synchronous: `{other}` is not full or normal"),
            };
            crate::ingest::bench(
                store,
                crate::ingest::BenchOptions {
                    count,
                    batch,
                    clients,
                    round_seconds,
                },
            )
            .await
        }
    }
}

fn instruments() -> Result<InstrumentRegistry> {
    InstrumentRegistry::embedded().map_err(|e| anyhow!("built-in instruments: {e}"))
}

/// The instruments this site offers: the built-in set plus the licensed
/// item-text packs in `text_packs_dir`, validated before serving.
fn site_instruments(config: &Config) -> Result<InstrumentRegistry> {
    let mut registry = instruments()?;
    let Some(dir) = &config.text_packs_dir else {
        return Ok(registry);
    };
    let shown = dir.display();
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("text_packs_dir {shown}: cannot read the directory"))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("text_packs_dir {shown}"))?
            .path();
        if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("text_packs_dir: cannot read {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            files.push(tapestry_domain::content::ContentFile { path: name, text });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    registry
        .apply_text_pack(&files)
        .map_err(|e| anyhow!("text_packs_dir {shown}: {e}"))?;
    Ok(registry)
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
        if read > 0 && (read < 16 || header != *b"SQLite format 3\0") {
            bail!("data_dir {shown}: tapestry.db is not a SQLite database (corrupt or foreign file); restore it from a backup or move the directory aside");
        }
    }
    Ok(())
}

/// Where checkpoints go by default: beside the data (copy them off the box).
fn checkpoint_file(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("audit-checkpoints.txt")
}

/// Appends a signed checkpoint of the newest audit entry; returns its seq.
async fn write_checkpoint(
    store: &Arc<dyn Store>,
    config: &Config,
    path: &Path,
) -> Result<Option<u64>> {
    let events = store.audit_events().await?;
    let Some(last) = events.last() else {
        return Ok(None);
    };
    let key = load_keys(config)?;
    let line = Checkpoint::sign(last, key.audit_secret()).to_line();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("audit checkpoints {}: cannot open", path.display()))?;
    writeln!(file, "{line}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("audit checkpoints {}: cannot write", path.display()))?;
    Ok(Some(last.seq))
}

/// The key file at the configured path, created (mode 0600, in a directory
/// created if missing) on first run.
fn load_keys(config: &Config) -> Result<tapestry_store::crypto::KeyFile> {
    if let Some(dir) = config
        .key_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "key_file {}: cannot create its directory",
                config.key_file.display()
            )
        })?;
    }
    tapestry_store::crypto::load_or_create_key_file(&config.key_file)
        .map_err(|e| anyhow!("key_file: {e}"))
}

/// The data directory is readable by the service account only: the
/// database, its WAL and the key file inside it are never world-readable.
#[cfg(unix)]
fn restrict_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| {
        format!(
            "data_dir {}: cannot restrict its permissions",
            dir.display()
        )
    })
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let location = match &config.database {
        Database::Sqlite(dir) => {
            check_data_dir(dir)?;
            std::fs::create_dir_all(dir).with_context(|| {
                format!("data_dir {}: cannot create the directory", dir.display())
            })?;
            restrict_dir(dir)?;
            Location::SqliteDir(dir.clone())
        }
        Database::Postgres(url) => {
            // Reach the server before creating anything on disk (the key file).
            let probe = tapestry_store::PgStore::open(url.expose()).await;
            match probe {
                Ok(p) => p.close().await,
                Err(StoreError::Backend(inner)) => bail!(
                    "DATABASE_URL {}: cannot use the PostgreSQL database ({inner}); check the URL and that the server is running",
                    crate::config::redact_url(url.expose())
                ),
                Err(other) => return Err(anyhow!(other)),
            }
            Location::Postgres(url.expose().to_string())
        }
    };
    let key_file = load_keys(config)?;
    tapestry_store::open(&location, key_file).await.map_err(|e| match (&config.database, e) {
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
    // Knowledge and instruments are validated before anything is served.
    let registry = site_instruments(&config)?;
    let knowledge = Knowledge::embedded().map_err(|e| anyhow!("knowledge base: {e}"))?;
    let unavailable: Vec<String> = registry
        .listing()
        .into_iter()
        .filter(|l| matches!(l.availability, Availability::Unavailable { .. }))
        .map(|l| l.id)
        .collect();
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
            "\nTapestry demo practice {} ({}, {} synthetic clients).\nDemo logins (role, name, e-mail, password):\n{logins}Staff accounts also need a 6-digit code: add the TOTP secret shown to any authenticator app\n(or run `oathtool --totp -b <secret>`) and enter its code after the password.\n",
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
    let key_file = load_keys(&config)?;
    let stop_worker = crate::worker::start(&config, store.clone(), clock.clone(), &public_url)?;
    let mut state = AppState::new(
        store.clone(),
        clock.clone(),
        config.tls.is_some() || config.behind_proxy,
    )
    .with_csrf_secret(key_file.csrf_secret())
    .with_sessions_config(tapestry_web::sessions::SessionsConfig {
        stun_urls: config.online.stun_urls.clone(),
        turn_urls: config.online.turn_urls.clone(),
        turn_secret: config
            .online
            .turn_secret
            .as_ref()
            .map(|s| s.expose().to_string()),
        phone_instructions: config.online.phone_dial_in.clone(),
    })
    .with_knowledge(registry.clone(), knowledge);
    state.behind_proxy = config.behind_proxy;
    state.sessions = tapestry_domain::identity::session::SessionPolicy {
        staff_idle: chrono::Duration::minutes(i64::from(config.staff_idle_minutes)),
        client_idle: chrono::Duration::minutes(i64::from(config.client_idle_minutes)),
        absolute: chrono::Duration::hours(i64::from(config.absolute_hours)),
    };
    tapestry_domain::identity::password::prepare_unknown_user_check();
    state.limits.request_timeout = Duration::from_secs(config.request_timeout_secs);
    state.limits.max_body_bytes = config.max_body_bytes;
    let shutting_down = state.shutting_down.clone();
    let curve_job = jobs::spawn_curve_job(store.clone(), Arc::new(instruments()?), clock.clone());
    let app = tapestry_web::router(state);
    let options = server::ServeOptions {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        tls,
        drain_timeout: Duration::from_secs(10),
    };
    if !unavailable.is_empty() {
        out.push_str(&format!(
            "\nInstruments that need a licensed item-text pack (text_packs_dir) before clients can be given them: {}\n",
            unavailable.join(", ")
        ));
    }
    println!(
        "{out}\nTapestry is serving {} on {} ({}), ready in {} ms. Press Ctrl-C to stop.",
        describe(&config.database),
        public_url,
        bound,
        started.elapsed().as_millis()
    );
    let _ = std::io::stdout().flush();
    tracing::info!(
        listen = %bound,
        backend = store.backend().as_str(),
        key_file = %config.key_file.display(),
        staff_idle_minutes = config.staff_idle_minutes,
        client_idle_minutes = config.client_idle_minutes,
        absolute_session_hours = config.absolute_hours,
        "serving"
    );
    let shutdown = async move {
        shutdown_signal().await;
        shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutdown requested; draining connections");
    };
    // Signed audit checkpoints every 15 minutes and at shutdown (G14).
    let checkpoints = checkpoint_file(&config);
    let ticker = {
        let store = store.clone();
        let config = config.clone();
        let path = checkpoints.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(15 * 60));
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = write_checkpoint(&store, &config, &path).await {
                    tracing::error!(error = %e, "audit checkpoint failed");
                }
            }
        })
    };
    server::serve(listener, app, options, shutdown).await;
    ticker.abort();
    if let Err(e) = write_checkpoint(&store, &config, &checkpoints).await {
        tracing::error!(error = %e, "audit checkpoint at shutdown failed");
    }
    curve_job.abort();
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
