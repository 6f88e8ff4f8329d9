//! Builds the application: the Kafka producer, the shared state, the middleware and the
//! route table, bound to a listener (port 0 in tests). Owns the shutdown sequence.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::auth::reload::PolicyReload;
use crate::auth::Authenticator;
use crate::config::{ConfigError, Settings};
use crate::formats::SchemaFormats;
use crate::http::authenticate::{self, AuthState};
use crate::http::cors::{self, CorsPolicy};
use crate::http::guard::{self, Gate};
use crate::http::observe::{self, AccessLog, Observability};
use crate::http::openapi::ApiDocument;
use crate::http::{self, AppState};
use crate::idempotency::Idempotency;
use crate::kafka::{self, Kafka, KafkaSetupError};
use crate::limits::{BodyLimits, InFlightRequests, RateLimits};
use crate::metrics::Metrics;
use crate::produce::ProduceService;
use crate::schema_registry::SchemaRegistry;
use crate::shutdown::{self, Lifecycle};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A bound, not yet running, application.
pub struct Application {
    server: Server,
    port: u16,
    tls_port: Option<u16>,
    /// The separate `/metrics` listener, unless `metrics.serve_on_api_listener`.
    metrics_server: Option<(Server, u16)>,
    kafka: Arc<Kafka>,
    lifecycle: Arc<Lifecycle>,
    in_flight: Arc<InFlightRequests>,
    shutdown_timeout: Duration,
    jwt: Option<Arc<crate::auth::jwt::JwtValidator>>,
    policy_reload: Option<PolicyReload>,
    rate_limits: Arc<RateLimits>,
}

impl Application {
    /// Creates the producer and binds `settings.server.listen`.
    ///
    /// # Errors
    /// When the address cannot be bound or the producer cannot be created.
    pub fn build(settings: &Settings) -> Result<Application, StartupError> {
        let address = settings.server.listen;
        let listener =
            TcpListener::bind(address).map_err(|source| StartupError::Bind { address, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();
        let authenticator = Arc::new(Authenticator::new(&settings.auth)?);
        refuse_open(settings, &authenticator)?;
        let jwt = authenticator.jwt();
        let metrics = Arc::new(Metrics::new(
            &settings.metrics.topics,
            authenticator.policy().principal_ids(),
            &kafka::librdkafka_version(),
        ));
        let policy_reload = PolicyReload::new(
            Arc::clone(&authenticator),
            Arc::clone(&metrics),
            settings.auth.policy_reload_interval_ms,
        );
        let auth_state = web::Data::new(AuthState {
            authenticator,
            metrics: Arc::clone(&metrics),
        });
        let kafka = Arc::new(Kafka::connect(settings, Arc::clone(&metrics))?);
        if kafka.is_dev_cluster() {
            tracing::warn!(
                brokers = settings.dev.brokers,
                "DEV MODE (--dev): producing to an embedded in-memory mock cluster. NOTHING \
                 IS DURABLE: every record is lost when the process exits."
            );
        }
        let lifecycle = Arc::new(Lifecycle::default());
        let in_flight = Arc::new(InFlightRequests::new(
            settings.limits.max_in_flight_requests,
            Arc::clone(&metrics),
        ));
        let rate_limits = Arc::new(RateLimits::new(&settings.limits.rate));
        let state = web::Data::new(AppState {
            kafka: Arc::clone(&kafka),
            produce: ProduceService::new(
                settings,
                Arc::clone(&kafka),
                Arc::clone(&rate_limits),
                Arc::clone(&metrics),
            )?,
            body_limits: BodyLimits::new(settings, Arc::clone(&metrics)),
            lifecycle: Arc::clone(&lifecycle),
            schemas: SchemaRegistry::new(&settings.schema_registry, Arc::clone(&metrics))?.map(
                |registry| {
                    SchemaFormats::new(
                        registry,
                        settings.schema_registry.max_cached_schemas,
                        Duration::from_millis(settings.schema_registry.latest_ttl_ms),
                        Duration::from_millis(settings.schema_registry.request_timeout_ms),
                        Arc::clone(&metrics),
                    )
                },
            ),
            advertised_url: settings.server.advertised_url.clone(),
            streaming: settings.streaming,
            batch: settings.batch,
            idempotency: Arc::new(Idempotency::new(
                &settings.idempotency,
                Arc::clone(&metrics),
            )?),
        });
        let gate = web::Data::new(Gate {
            lifecycle: Arc::clone(&lifecycle),
            in_flight: Arc::clone(&in_flight),
        });
        let observability = web::Data::new(Observability {
            metrics: Arc::clone(&metrics),
            access_log: match (settings.log.access_log, settings.json_logs()) {
                (false, _) => AccessLog::Off,
                (true, true) => AccessLog::Json,
                (true, false) => AccessLog::Text,
            },
        });
        let serve_metrics = settings.metrics.serve_on_api_listener;
        let api_document = web::Data::new(ApiDocument::new(settings));
        let cors_policy = CorsPolicy::new(&settings.cors, &settings.auth.api_key_header);
        let mut tls_port = None;
        // The last `wrap` is the outermost: observe sees every request and answer; CORS
        // answers preflights before the guard and authentication run, and adds its headers
        // to their refusals too.
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(gate.clone())
                .app_data(observability.clone())
                .app_data(auth_state.clone())
                .app_data(api_document.clone())
                .wrap(from_fn(authenticate::authenticate))
                .wrap(from_fn(guard::admit))
                .wrap(cors_policy.middleware())
                .wrap(from_fn(cors::render_refusals))
                .wrap(from_fn(observe::observe))
                .configure(|cfg| http::routes(cfg, serve_metrics))
        })
        // Shutdown is ours (see `run_until_stopped`): actix must not exit on signals itself.
        .disable_signals()
        .on_connect(crate::tls::remember_client_certificate)
        .client_request_timeout(Duration::from_millis(
            settings.limits.header_read_timeout_ms,
        ))
        .max_connections(settings.limits.max_connections_per_worker)
        .shutdown_timeout(1)
        .listen(listener)
        .map_err(|source| StartupError::Bind { address, source })?;
        if let Some(tls_address) = settings.server.tls.listen {
            let acceptor = crate::tls::acceptor(&settings.server.tls)?;
            let tls_listener =
                TcpListener::bind(tls_address).map_err(|source| StartupError::Bind {
                    address: tls_address,
                    source,
                })?;
            tls_port = Some(
                tls_listener
                    .local_addr()
                    .map_err(|source| StartupError::Bind {
                        address: tls_address,
                        source,
                    })?
                    .port(),
            );
            server = server
                .listen_openssl(tls_listener, acceptor)
                .map_err(|source| StartupError::Bind {
                    address: tls_address,
                    source,
                })?;
            tracing::info!(address = %tls_address, "listening for HTTPS (TLS 1.2+)");
        }
        if let Some(workers) = settings.server.workers {
            server = server.workers(workers);
        }
        tracing::info!(%address, port, "listening");
        let metrics_server = if serve_metrics {
            None
        } else {
            Some(metrics_server(
                settings.metrics.listen,
                Arc::clone(&metrics),
            )?)
        };
        Ok(Application {
            server: server.run(),
            port,
            tls_port,
            metrics_server,
            kafka,
            lifecycle,
            in_flight,
            shutdown_timeout: Duration::from_millis(settings.server.shutdown_timeout_ms),
            jwt,
            policy_reload,
            rate_limits,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the HTTPS listener, when configured.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The port of the separate `/metrics` listener, unless `metrics.serve_on_api_listener`.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    /// Serves until `shutdown` resolves, then drains and flushes within the configured
    /// timeout: new requests get 503, in-flight requests finish, the listener closes, and
    /// the producer delivers what it holds.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let metrics_server = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let probe = tokio::spawn(Arc::clone(&self.kafka).run_probe());
        // The JWKS fetches use awc, which lives on this thread's (actix) runtime.
        let key_refresh = self
            .jwt
            .clone()
            .map(|jwt| actix_web::rt::spawn(jwt.run_key_refresh()));
        let housekeeping = tokio::spawn(Arc::clone(&self.rate_limits).run_housekeeping());
        let policy_reload = self.policy_reload.map(|reload| tokio::spawn(reload.run()));
        tokio::select! {
            result = &mut server => {
                probe.abort();
                housekeeping.abort();
                if let Some(task) = policy_reload {
                    task.abort();
                }
                if let Some(task) = key_refresh {
                    task.abort();
                }
                return result.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            }
            () = shutdown => {}
        }
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.lifecycle.begin_drain();
        tracing::info!(
            in_flight = self.in_flight.count(),
            "shutting down: refusing new requests, finishing in-flight ones"
        );
        if tokio::time::timeout_at(deadline, self.in_flight.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.in_flight.count(),
                "shutdown timeout reached with requests still in flight"
            );
        }
        handle.stop(true).await;
        let _ = server.await;
        if let Some(metrics_server) = metrics_server {
            metrics_server.stop(true).await;
        }
        probe.abort();
        housekeeping.abort();
        if let Some(task) = policy_reload {
            task.abort();
        }
        if let Some(task) = key_refresh {
            task.abort();
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match self.kafka.flush(remaining).await {
            Ok(()) => tracing::info!("producer flushed; bye"),
            Err(in_flight) => tracing::error!(
                in_flight,
                "shutdown timeout reached before the producer delivered every record"
            ),
        }
        Ok(())
    }

    /// [`Application::run_until_stopped`] on SIGTERM or SIGINT.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until_stopped(shutdown::signal()).await
    }
}

/// A listener that serves only `/metrics`.
fn metrics_server(
    address: std::net::SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(Server, u16), StartupError> {
    let bind_error = |source| StartupError::Bind { address, source };
    let listener = TcpListener::bind(address).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let observability = web::Data::new(Observability {
        metrics,
        access_log: AccessLog::Off,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(observability.clone())
            .route("/metrics", web::get().to(observe::metrics))
    })
    .disable_signals()
    .shutdown_timeout(1)
    .workers(1)
    .listen(listener)
    .map_err(bind_error)?
    .run();
    tracing::info!(%address, port, "serving /metrics");
    Ok((server, port))
}

/// Auth off is fine on loopback (dev mode); beyond it, anyone who reaches the port could
/// produce to any topic, so the service refuses to start unless told that is intended.
fn refuse_open(settings: &Settings, authenticator: &Authenticator) -> Result<(), StartupError> {
    if authenticator.enabled() {
        return Ok(());
    }
    let Some(exposed) = [Some(settings.server.listen), settings.server.tls.listen]
        .into_iter()
        .flatten()
        .find(|address| !address.ip().is_loopback())
    else {
        return Ok(());
    };
    if !settings.auth.allow_unauthenticated {
        return Err(ConfigError::invalid(
            "auth.enabled",
            format!(
                "authentication is off and the service would listen on {exposed}, beyond \
                 loopback: anyone who reached it could produce to every topic. Turn \
                 authentication on (auth.enabled with a policy), listen on loopback, or set \
                 auth.allow_unauthenticated = true to run open on purpose"
            ),
        )
        .into());
    }
    tracing::warn!(
        listen = %exposed,
        "AUTHENTICATION IS OFF (auth.allow_unauthenticated) and the service listens beyond \
         loopback: anyone who can reach it can produce to any topic"
    );
    Ok(())
}
