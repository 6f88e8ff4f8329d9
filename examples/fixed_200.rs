//! Benchmark baseline: an actix-web server that answers `POST /topics/{topic}` with a fixed
//! 200 and a Confluent-shaped body, after reading the request body, and does nothing else.
//! Same framework and worker count as the service (actix's default, the number of cores,
//! unless `--workers`), so its requests/s under the same wrk load is the ceiling for the
//! proxy's requests/s (see BENCHMARKS.md).
//!
//! ```sh
//! cargo run --release --example fixed_200 -- --listen 127.0.0.1:18082
//! ```

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Parser;

const BODY: &str = r#"{"offsets":[{"partition":0,"offset":0,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#;

#[derive(Parser, Debug)]
#[command(about = "Fixed-200 produce endpoint (benchmark baseline)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18082")]
    listen: SocketAddr,
    /// Worker threads; actix's default (the number of cores, as the service) when unset.
    #[arg(long)]
    workers: Option<usize>,
}

async fn produce(_topic: web::Path<String>, body: web::Bytes) -> HttpResponse {
    // The body is read (and its length looked at) as the service must read it.
    std::hint::black_box(body.len());
    HttpResponse::Ok()
        .content_type("application/vnd.kafka.v2+json")
        .body(BODY)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut server = HttpServer::new(|| {
        App::new()
            // The service accepts up to 8 MiB bodies.
            .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
            .route("/topics/{topic}", web::post().to(produce))
    })
    .bind(args.listen)?;
    if let Some(workers) = args.workers {
        server = server.workers(workers);
    }
    eprintln!("fixed_200 listening on {}", args.listen);
    server.run().await
}
