//! Wires the parts together and binds the listeners. Tests call [`App::build`] with port 0
//! and read the real addresses back.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::domain::{Clock, SystemClock};
use crate::escalation::telnyx::state::{MemoryState, TelnyxState};
use crate::escalation::telnyx::{Telnyx, TelnyxChannel};
use crate::gateway::{Gateway, Settings};
use crate::grpc::pb::sentinel_server::SentinelServer;
use crate::grpc::{pb, SentinelService};
use crate::policy::PolicyPack;
use crate::scoring::fallback::FallbackScorer;
use crate::scoring::llm::{LlmOptions, LlmScorer};
use crate::scoring::Scorer;
use crate::store::{MemoryStore, Store};
use crate::webhook::signature::WebhookKey;
use crate::webhook::{router, HttpState};

pub struct App {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Escalation and webhook work spawned while serving; waited for (bounded) at shutdown.
    work: TaskTracker,
}

/// How long shutdown waits for escalation and webhook work still running.
const WORK_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Picks the store the configuration names.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match config.store.redis_url() {
        None => Ok(Arc::new(match config.store.retention {
            Some(retention) => MemoryStore::with_retention(retention),
            None => MemoryStore::new(),
        })),
        Some(url) => {
            let mut options = crate::store::redis::RedisOptions::default();
            if let Some(retention) = config.store.retention {
                options.retention = retention;
            }
            let store = crate::store::redis::RedisStore::connect(url, options)
                .await
                .context("SENTINEL_REDIS_URL")?;
            Ok(Arc::new(store))
        }
    }
}

/// The per-agent submission limiter `SENTINEL_AGENT_RATE_LIMIT` asks for: shared through
/// Redis when `SENTINEL_REDIS_URL` is set, per replica otherwise.
pub async fn open_rate_limiter(
    config: &Config,
) -> anyhow::Result<Option<Arc<dyn crate::gateway::limits::RateLimiter>>> {
    let Some(per_second) = config.agent_rate_limit else {
        return Ok(None);
    };
    Ok(Some(match config.store.redis_url() {
        None => Arc::new(crate::gateway::limits::LocalRateLimiter::new(per_second)),
        Some(url) => Arc::new(
            crate::store::redis::ratelimit::RedisRateLimiter::connect(
                url,
                Default::default(),
                per_second,
            )
            .await
            .context("SENTINEL_REDIS_URL")?,
        ),
    }))
}

/// Picks the scorer the configuration names.
pub fn open_scorer(config: &Config) -> anyhow::Result<Arc<dyn Scorer>> {
    match &config.llm.scorer {
        Some(settings) => {
            let options = LlmOptions::from_settings(settings, config.llm.timeout);
            info!(model = %options.model, base_url = %options.base_url, "LLM scorer enabled");
            Ok(Arc::new(LlmScorer::new(options).context("GROQ_API_KEY")?))
        }
        None => Ok(Arc::new(FallbackScorer)),
    }
}

pub fn load_policy(config: &Config) -> anyhow::Result<PolicyPack> {
    match &config.policy_path {
        None => Ok(PolicyPack::builtin()),
        Some(path) => {
            PolicyPack::load(path).with_context(|| format!("SENTINEL_POLICY={}", path.display()))
        }
    }
}

impl App {
    /// Loads the policy, opens the store, binds both listeners and starts serving.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let policy = Arc::new(load_policy(&config)?);
        let store = open_store(&config).await?;
        let scorer = open_scorer(&config)?;
        Self::build_with(config, policy, store, scorer).await
    }

    /// Like [`App::build`] with the parts given: tests inject stores and scorers.
    pub async fn build_with(
        config: Config,
        policy: Arc<PolicyPack>,
        store: Arc<dyn Store>,
        scorer: Arc<dyn Scorer>,
    ) -> anyhow::Result<App> {
        Self::build_with_clock(config, policy, store, scorer, SystemClock::shared()).await
    }

    /// Like [`App::build_with`], with the gateway reading the time from `clock` (give a
    /// memory store the same clock: [`MemoryStore::with_clock`]).
    pub async fn build_with_clock(
        config: Config,
        policy: Arc<PolicyPack>,
        store: Arc<dyn Store>,
        scorer: Arc<dyn Scorer>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        crate::metrics::set_enabled(config.metrics);
        if !config.metrics {
            info!("metrics are off (SENTINEL_METRICS=off): /metrics shows the build and up gauges only");
        }
        let settings = Settings {
            limits: config.limits.clone(),
            approval_timeout: config.approval_timeout,
            scorer_timeout: config.llm.timeout,
        };
        let rate = open_rate_limiter(&config).await?;
        let shutdown = CancellationToken::new();
        let (receipts, receipt_loader) =
            crate::receipt::open_receipts(&config, shutdown.clone()).await?;
        let gateway = Arc::new(
            Gateway::new(store.clone(), policy.clone(), scorer.clone(), settings)
                .with_caller_limits(config.max_watches_per_agent, rate)
                .with_clock(clock)
                .with_receipts(receipts),
        );
        let work = TaskTracker::new();

        if config.keys.is_open() {
            warn!("NO API KEYS CONFIGURED: the gateway is OPEN; any caller may submit as any agent and resolve any intent. Set SENTINEL_API_KEYS or [auth] keys before exposing it.");
        } else {
            info!(keys = config.keys.len(), "API key authentication enabled");
        }

        // Telnyx: the phone/SMS channel only with an API key; webhooks only with the public key.
        let webhook_key = config.telnyx_public_key.map(WebhookKey::from);
        let telnyx = match &config.telnyx {
            None => None,
            Some(settings) => {
                // Ladders, indexes and webhook dedupe must be shared when replicas share Redis.
                let state: Arc<dyn TelnyxState> = match config.store.redis_url() {
                    None => Arc::new(MemoryState::with_clock(gateway.clock().clone())),
                    Some(url) => Arc::new(
                        crate::escalation::telnyx::state::redis::RedisTelnyxState::connect(
                            url,
                            Default::default(),
                        )
                        .await
                        .context("SENTINEL_REDIS_URL")?,
                    ),
                };
                let telnyx = Telnyx::new(
                    settings,
                    gateway.clone(),
                    scorer.clone(),
                    state,
                    work.clone(),
                    shutdown.clone(),
                )?;
                if webhook_key.is_none() {
                    warn!("TELNYX_API_KEY is set but TELNYX_PUBLIC_KEY is not: every Telnyx webhook will be refused, so calls cannot progress");
                }
                let tier = settings.escalation.pin_tier(&settings.roster);
                let no_pin: Vec<&str> = settings
                    .roster
                    .iter()
                    .filter(|a| a.pin_sha256.is_none())
                    .map(|a| a.name.as_str())
                    .collect();
                if tier <= 100 && !no_pin.is_empty() {
                    warn!(tier, approvers = ?no_pin, "these approvers have no PIN: they can decline but not approve intents at or above the PIN tier by phone or SMS");
                }
                if settings.roster.is_empty() {
                    warn!("TELNYX_API_KEY is set but the roster is empty ([[approvers]] or ADMIN_PHONE_NUMBER): nobody will be called");
                }
                info!(
                    approvers = settings.roster.len(),
                    "Telnyx escalation enabled"
                );
                Some(telnyx)
            }
        };
        let channels: Vec<Arc<dyn crate::escalation::Channel>> = telnyx
            .iter()
            .map(|t| Arc::new(TelnyxChannel(t.clone())) as Arc<dyn crate::escalation::Channel>)
            .collect();

        let grpc_listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("SENTINEL_GRPC_ADDR: cannot bind {}", config.grpc_addr))?;
        let http_listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("SENTINEL_HTTP_ADDR: cannot bind {}", config.http_addr))?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let (grpc_incoming, http_incoming, accept_loops) =
            crate::net::listen(&config.net, grpc_listener, http_listener, &shutdown)?;

        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let service = SentinelService::new(gateway.clone(), config.keys.clone(), shutdown.clone())
            .with_watch_max_lag_bytes(config.watch_max_lag_bytes);

        let mut tasks = JoinSet::new();
        if let Some(loader) = receipt_loader {
            tasks.spawn(async move {
                loader.await;
                Ok(())
            });
        }
        {
            let shutdown = shutdown.clone();
            let health = health.clone();
            let server = crate::net::grpc_server(&config.net);
            tasks.spawn(async move {
                server
                    .layer(crate::grpc::rpc_layer::RpcLayer)
                    .layer(tower::util::MapResponseLayer::new(
                        crate::grpc::decode_errors_are_invalid_argument,
                    ))
                    .add_service(health_service)
                    .add_service(reflection_v1)
                    .add_service(reflection_v1alpha)
                    .add_service(SentinelServer::new(service))
                    .serve_with_incoming_shutdown(grpc_incoming.into_stream(), async move {
                        shutdown.cancelled().await;
                        health
                            .set_not_serving::<SentinelServer<SentinelService>>()
                            .await;
                    })
                    .await
                    .context("gRPC server failed")
            });
        }
        {
            let shutdown = shutdown.clone();
            let app = router(HttpState {
                gateway: gateway.clone(),
                telnyx: telnyx.clone(),
                webhook_key: webhook_key.clone(),
                tasks: work.clone(),
            })
            .merge(crate::console::router(crate::console::ConsoleState {
                gateway: gateway.clone(),
                keys: config.keys.clone(),
                sessions: Default::default(),
                secure: config.net.tls.is_some(),
                confirm_tier: config
                    .telnyx
                    .as_ref()
                    .and_then(|telnyx| telnyx.escalation.pin_min_risk)
                    .unwrap_or(crate::config::DEFAULT_PIN_MIN_RISK),
                shutdown: shutdown.clone(),
            }));
            tasks.spawn(async move {
                axum::serve(http_incoming, app)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await
                    .context("HTTP server failed")
            });
        }
        for accept_loop in accept_loops {
            tasks.spawn(async move { accept_loop.await.context("accept loop panicked") });
        }
        {
            let expiry = gateway.clone().spawn_expiry(shutdown.clone());
            tasks.spawn(async move { expiry.await.context("expiry loop panicked") });
        }
        if config.metrics {
            let gauges = gateway.spawn_pending_gauges(shutdown.clone());
            tasks.spawn(async move { gauges.await.context("pending gauges loop panicked") });
        }
        {
            let escalation = crate::escalation::spawn(gateway.clone(), channels, shutdown.clone());
            tasks.spawn(async move { escalation.await.context("escalation loop panicked") });
        }

        health
            .set_serving::<SentinelServer<SentinelService>>()
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        {
            // gRPC health follows the store, like /readyz: a replica that cannot reach Redis
            // says NOT_SERVING so load balancers send agents elsewhere.
            let shutdown = shutdown.clone();
            let gateway = gateway.clone();
            tasks.spawn(async move {
                let mut serving = true;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                    let ok = matches!(
                        tokio::time::timeout(std::time::Duration::from_secs(1), gateway.ready())
                            .await,
                        Ok(Ok(()))
                    );
                    crate::metrics::set_store_up(ok);
                    if ok != serving && !shutdown.is_cancelled() {
                        serving = ok;
                        let status = if ok {
                            tonic_health::ServingStatus::Serving
                        } else {
                            warn!("the store does not answer: reporting NOT_SERVING");
                            tonic_health::ServingStatus::NotServing
                        };
                        health
                            .set_service_status("sentinel.v1.Sentinel", status)
                            .await;
                        health.set_service_status("", status).await;
                    }
                }
            });
        }
        info!(%grpc_addr, %http_addr, policy = policy.version(), "sentinel is serving");
        Ok(App {
            grpc_addr,
            http_addr,
            shutdown,
            tasks,
            work,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The token that stops everything; cancel it to shut down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until the token is cancelled or a server fails; then waits for every task.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(done) = self.tasks.join_next().await {
            // Any task ending means we are stopping: stop the rest too.
            self.shutdown.cancel();
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(anyhow::anyhow!("task panicked: {e}"));
                }
            }
        }
        // The listeners and loops are down: let phone and webhook work in flight finish (a
        // decision being recorded, a hang-up being sent), but not forever.
        self.work.close();
        if tokio::time::timeout(WORK_DRAIN, self.work.wait())
            .await
            .is_err()
        {
            warn!(
                tasks = self.work.len(),
                "escalation and webhook work still running after {WORK_DRAIN:?}; stopping anyway"
            );
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
