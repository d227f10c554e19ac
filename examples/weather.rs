//! A weather client memoized with a ttl, over real HTTP.
//!
//! ```text
//! cargo run --release --example weather       # against a built-in service on 127.0.0.1
//! cargo run --release --example weather --features tls -- --api open-meteo
//!                                               # against api.open-meteo.com (needs internet)
//! ```
//!
//! By default the example starts a small weather service of its own on a free loopback port,
//! answering each request after about 200 ms. The client, `temperature`, caches answers for 2 s:
//! a repeated city is answered from the cache in microseconds, an entry older than the ttl is
//! fetched again, and an error (an unknown city) is never cached. At the end the example checks
//! that the service saw exactly one request per cache miss.
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use memo::memoize;
use serde::Deserialize;

/// What the built-in service knows.
const LOCAL_CITIES: &[(&str, f64)] = &[("Oslo", -3.5), ("Lisbon", 17.0), ("Tokyo", 9.5)];
/// Where the real API's cities are (latitude, longitude).
const OPEN_METEO_CITIES: &[(&str, f64, f64)] = &[
    ("Oslo", 59.91, 10.75),
    ("Lisbon", 38.72, -9.14),
    ("Tokyo", 35.68, 139.69),
];
const SERVICE_LATENCY: Duration = Duration::from_millis(200);
const TTL: Duration = Duration::from_secs(2);

/// Requests the built-in service has answered.
static SERVED: AtomicUsize = AtomicUsize::new(0);
/// Where `temperature` asks, set once in `main`.
static BACKEND: OnceLock<Backend> = OnceLock::new();

enum Backend {
    Local {
        base_url: String,
        agent: ureq::Agent,
    },
    OpenMeteo {
        agent: ureq::Agent,
    },
}

/// Why a temperature could not be had.
#[derive(Clone, Debug, PartialEq)]
enum WeatherError {
    /// The service does not know the city (HTTP 404, or not in the real API's table).
    UnknownCity(String),
    /// The service answered with another error status.
    Status(u16),
    /// The service could not be reached (connection, TLS, timeout).
    Unreachable(String),
    /// The answer was not the expected JSON.
    BadAnswer(String),
}

impl fmt::Display for WeatherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeatherError::UnknownCity(city) => write!(f, "unknown city {city:?}"),
            WeatherError::Status(code) => write!(f, "the weather service answered HTTP {code}"),
            WeatherError::Unreachable(why) => {
                write!(f, "the weather service is unreachable: {why}")
            }
            WeatherError::BadAnswer(why) => write!(f, "unexpected answer: {why}"),
        }
    }
}

impl std::error::Error for WeatherError {}

/// The current temperature in `city`, in °C. Only `Ok` answers are cached, for 2 s.
#[memoize(maxsize = 128, ttl = "2s")]
fn temperature(city: &str) -> Result<f64, WeatherError> {
    match BACKEND.get().expect("main sets the backend first") {
        Backend::Local { base_url, agent } => {
            #[derive(Deserialize)]
            struct Reading {
                temperature_c: f64,
            }
            let url = format!("{base_url}/weather");
            let reading: Reading = get_json(agent.get(&url).query("city", city), city)?;
            Ok(reading.temperature_c)
        }
        Backend::OpenMeteo { agent } => {
            #[derive(Deserialize)]
            struct Forecast {
                current: Current,
            }
            #[derive(Deserialize)]
            struct Current {
                temperature_2m: f64,
            }
            let &(_, lat, lon) = OPEN_METEO_CITIES
                .iter()
                .find(|(name, _, _)| *name == city)
                .ok_or_else(|| WeatherError::UnknownCity(city.to_string()))?;
            let request = agent
                .get("https://api.open-meteo.com/v1/forecast")
                .query("latitude", lat.to_string())
                .query("longitude", lon.to_string())
                .query("current", "temperature_2m");
            let forecast: Forecast = get_json(request, city)?;
            Ok(forecast.current.temperature_2m)
        }
    }
}

/// Sends `request` and parses its JSON body; a 404 means the service does not know `city`.
fn get_json<T: serde::de::DeserializeOwned>(
    request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    city: &str,
) -> Result<T, WeatherError> {
    let mut response = request.call().map_err(|e| match e {
        ureq::Error::StatusCode(404) => WeatherError::UnknownCity(city.to_string()),
        ureq::Error::StatusCode(code) => WeatherError::Status(code),
        other => WeatherError::Unreachable(other.to_string()),
    })?;
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| WeatherError::Unreachable(e.to_string()))?;
    serde_json::from_str(&body).map_err(|e| WeatherError::BadAnswer(format!("{e} in {body:?}")))
}

/// Starts the built-in service on a free loopback port; returns its base URL.
///
/// `GET /weather?city=Oslo` answers `{"city":"Oslo","temperature_c":-3.5}` after
/// `SERVICE_LATENCY`; a city it does not know gets a 404.
fn start_local_service() -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind a loopback port");
    let port = server.server_addr().to_ip().expect("an IP listener").port();
    thread::spawn(move || {
        for request in server.incoming_requests() {
            SERVED.fetch_add(1, Ordering::SeqCst);
            thread::sleep(SERVICE_LATENCY);
            // The demo's city names are plain ASCII words, so the query needs no decoding.
            let city = request
                .url()
                .split_once("?city=")
                .map(|(_, c)| c.to_string());
            let known = LOCAL_CITIES
                .iter()
                .find(|(name, _)| Some(*name) == city.as_deref());
            let (status, body) = match known {
                Some(&(name, t)) => (200, serde_json::json!({"city": name, "temperature_c": t})),
                None => (404, serde_json::json!({"error": "unknown city"})),
            };
            let header = "Content-Type: application/json".parse::<tiny_http::Header>();
            let response = tiny_http::Response::from_string(body.to_string())
                .with_status_code(status)
                .with_header(header.expect("a valid header"));
            // A client that hung up is no reason to stop serving the others.
            let _ = request.respond(response);
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// What the demo saw, to check against the service at the end.
#[derive(Default)]
struct Tally {
    ok_misses: usize,
    errors: usize,
}

/// Calls `temperature(city)` and prints the answer, the latency and whether the cache answered.
fn ask(city: &str, note: &str, tally: &mut Tally) {
    let misses_before = temperature::cache_info().misses;
    let start = Instant::now();
    let answer = temperature(city);
    let elapsed = start.elapsed();
    let hit = temperature::cache_info().misses == misses_before;

    if let Err(WeatherError::Unreachable(why)) = &answer {
        eprintln!("\ncould not reach the weather service: {why}");
        if let Some(Backend::OpenMeteo { .. }) = BACKEND.get() {
            eprintln!(
                "`--api open-meteo` needs internet access to api.open-meteo.com; \
                 run without it to use the built-in service on 127.0.0.1."
            );
        }
        std::process::exit(1);
    }
    match &answer {
        Ok(_) if !hit => tally.ok_misses += 1,
        Ok(_) => {}
        Err(_) => tally.errors += 1,
    }

    let shown = match &answer {
        Ok(t) => format!("{t:>5.1} °C"),
        Err(e) => format!("error: {e}"),
    };
    let source = if hit { "hit " } else { "miss" };
    let latency = if elapsed < Duration::from_millis(1) {
        format!("{:.1} µs", elapsed.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", elapsed.as_secs_f64() * 1e3)
    };
    let call = format!("temperature({city:?})");
    println!("  {call:<24} {shown:<32} {latency:>9}  {source}  {note}");
}

/// Whether `--api open-meteo` (or `WEATHER_API=open-meteo`) asks for the real API; `local`, the
/// default, starts the built-in service.
fn wants_open_meteo() -> bool {
    let from_args = std::env::args().skip_while(|a| a != "--api").nth(1);
    let choice = from_args.or_else(|| std::env::var("WEATHER_API").ok());
    match choice.as_deref() {
        None | Some("local") => false,
        Some("open-meteo") => true,
        Some(other) => {
            eprintln!("unknown api {other:?}; expected `--api local` or `--api open-meteo`");
            std::process::exit(2);
        }
    }
}

fn main() {
    let use_open_meteo = wants_open_meteo();
    if use_open_meteo && !cfg!(feature = "tls") {
        eprintln!(
            "the real API is HTTPS: run `cargo run --release --example weather --features tls \
             -- --api open-meteo`"
        );
        std::process::exit(2);
    }
    let timeout = Some(Duration::from_secs(10));
    let backend = if use_open_meteo {
        println!("asking api.open-meteo.com, caching answers for {TTL:?}\n");
        let config = ureq::Agent::config_builder()
            .timeout_global(timeout)
            .build();
        Backend::OpenMeteo {
            agent: config.into(),
        }
    } else {
        let base_url = start_local_service();
        println!(
            "weather service on {base_url}, {} ms per request; answers cached for {TTL:?}\n",
            SERVICE_LATENCY.as_millis()
        );
        // Loopback traffic never goes through a proxy, whatever the environment says.
        let config = ureq::Agent::config_builder()
            .timeout_global(timeout)
            .proxy(None)
            .build();
        Backend::Local {
            base_url,
            agent: config.into(),
        }
    };
    assert!(BACKEND.set(backend).is_ok(), "the backend is set once");

    let mut tally = Tally::default();
    ask("Oslo", "asks the service", &mut tally);
    ask("Oslo", "from the cache", &mut tally);
    ask("Lisbon", "another city: another entry", &mut tally);
    ask("Oslo", "still cached", &mut tally);
    ask("Atlantis", "an error...", &mut tally);
    ask("Atlantis", "...is not cached: asks again", &mut tally);

    let wait = TTL + Duration::from_millis(200);
    println!("\n  (sleeping {wait:?}, past the {TTL:?} ttl)\n");
    thread::sleep(wait);
    ask("Oslo", "expired: asks again", &mut tally);
    ask("Oslo", "cached again", &mut tally);

    let info = temperature::cache_info();
    println!("\n{info}");

    if !use_open_meteo {
        let served = SERVED.load(Ordering::SeqCst);
        println!(
            "the service answered {served} requests = {} successful misses + {} errors",
            tally.ok_misses, tally.errors
        );
        assert_eq!(served, tally.ok_misses + tally.errors);
        assert_eq!(
            served as u64, info.misses,
            "every miss, and only a miss, asks the service"
        );
        assert_eq!((info.hits, tally.ok_misses, tally.errors), (3, 3, 2));
    }
}
