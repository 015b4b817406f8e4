# Shortcuts like the old system's. `make` builds, `make run` backs up the
# workspace in $(HOME_DIR) (default: ./workspace), `make demo` runs the demo.
HOME_DIR ?= workspace
BIN := target/release/backupapps

.PHONY: all build run demo check test schedule crontab compose-demo clean
all: build

build:
	cargo build --release -p backup-cli

run: build
	$(BIN) --home $(HOME_DIR) backup

check: build
	$(BIN) --home $(HOME_DIR) check

schedule: build
	$(BIN) --home $(HOME_DIR) schedule run

crontab: build
	$(BIN) --home $(HOME_DIR) schedule crontab

demo:
	cargo run --release -p backup-cli -- demo

test:
	./scripts/test-all.sh

compose-demo:
	docker compose -f deploy/compose.yaml up --build --abort-on-container-exit

clean:
	cargo clean
