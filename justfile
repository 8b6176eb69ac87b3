# Longer recipes. The two commands that matter work without `just`:
#   cargo run --release -p phaze-portal
#   cargo test --workspace

default:
    @just --list

# Run the portal on the embedded default (http://127.0.0.1:8080, data in ./var)
run:
    cargo run --release -p phaze-portal

# Every test
test:
    cargo test --workspace

# fmt and clippy as CI runs them
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs (starts PostgreSQL and Redis if they are down)
check:
    bash .ci/run

# Criterion benchmarks (library level)
bench:
    cargo bench -p phaze-store-fs --bench sessions

# Load test against the release binary (needs wrk); see docs/performance.md
load:
    bash scripts/load.sh

# Apply the migrations of the configured store
migrate:
    cargo run -p phaze-portal -- migrate
