"""The complete, commented config file `orcast config example` prints (and a test checks)."""

EXAMPLE = '''\
# ORcast configuration (TOML). Every key is optional; the values shown are the defaults unless
# the comment says "example". Each key can also be set as ORCAST_<SECTION>_<KEY> in the
# environment (e.g. ORCAST_SERVER_PORT=8443); command-line flags (--port, --host, --data-dir,
# --log-level, --cert, --key) win over both. Check a file with: orcast config check FILE

[server]
host = "127.0.0.1"               # listen address; "0.0.0.0" for every interface (use TLS then)
port = 8080
data_dir = "orcast-data"         # event store, signing secret, Q&A, recordings
log_level = "info"               # debug, info, warning, error (same as [logging] level)
cors_origins = []                # example: ["https://hall.hospital.example"] for other sites' pages
# public_url = "https://orcast.hospital.example"   # the base of printed links behind a proxy
trusted_proxies = []             # example: ["10.0.0.5"]: honour its X-Forwarded-For
# workers = 4                    # processes holding viewers (default: the number of CPU cores);
                                 # 1 keeps every viewer in this one process (see README, "Workers")

[tls]                            # serve HTTPS (browsers grant cameras only on https:// or localhost)
# cert = "/etc/orcast/fullchain.pem"
# key = "/etc/orcast/privkey.pem"

[auth]
default_ttl = "12h"              # lifetime of a link minted without --ttl

[limits]
max_sessions = 2000              # the audience's WebRTC sessions (viewers, Q&A) on this server
max_publishers = 200             # publishers and talk-back, counted apart: viewers never lock out an OR
connect_timeout = 30             # s for ICE+DTLS to complete before a session is dropped
retry_after = 2                  # s a viewer of a feed that is not live is told to wait
on_demand_grace = 15             # s an on-demand source pulls on after its last viewer left
sessions_per_token = 10          # live sessions one link may hold (a shared link: mint with more)
session_rate = 5                 # new sessions per second per client address …
session_burst = 100              # … with this burst (a hospital NAT holds many viewers)

[ice]
# STUN/TURN servers, used by the server's peers and handed to clients (Link: rel="ice-server").
# With coturn's use-auth-secret, give the shared secret instead of a fixed password: ORcast
# hands out time-limited credentials (see README, "TURN").
servers = []
# example: servers = [{ urls = ["turn:turn.hospital.example:3478?transport=udp"], secret = "…" }]
# udp_ports = "40000-40199"      # bind WebRTC's UDP sockets in this range (one port per session),
                                 # split in equal parts between the server's workers

[recording]
# dir = "/srv/orcast/recordings" # default: {data_dir}/recordings
segment_minutes = 10             # a new file this often (cut on a keyframe)
min_free_gb = 1                  # refuse to start recording below this much free space
delete_after_days = 0            # retention; 0 keeps recordings until deleted

[qa]
questions_per_minute = 5         # per author; 1-600
max_questions = 10000            # per event

[relay]
send_path = "fast"               # "aiortc" sends through aiortc's RTCRtpSender (slower; for comparison)
udp_gso = true                   # fast path: a frame's packets in one system call per size (Linux UDP GSO)

[metrics]
# /metrics in the Prometheus format. Without token or port: a server-wide organizer link.
# token = "a-long-random-string" # scrapers send Authorization: Bearer <token>
# port = 9100                    # or: a separate listener for /metrics only …
host = "127.0.0.1"               # … on this address

# [cluster]
# Several nodes share one Redis (the directory of nodes and feeds, revocations, the Q&A): a
# viewer may join any node, which pulls the feed from the node that has it. Every node has the
# same signing secret (ORCAST_SECRET) and events. Without this section: one node, no Redis.
# redis = "redis://10.0.0.2:6379/0"
# node_url = "https://node-b.hospital.example"  # how clients and the other nodes reach this node
# node_id = "node-b"                            # default: from node_url

[logging]
format = "text"                  # text (for people) or json (one object per line, for collectors)
level = "info"

# One table per event (they can also be created through the API or /admin).
[[events]]
slug = "hpb-masterclass"         # example
title = "Hepatobiliary malignancies: international master class"
theatres = ["or1", "or2", "or3", "podium", "faculty"]
record = true                    # record every feed of this event that goes live
public = false                   # true: watching needs no link (publishing always does)
adhoc_theatres = false           # true: any theatre name is accepted
viewers_draw = false             # true: viewers may draw on the picture too (faculty, moderators, organizers can)
stroke_fade_s = 8                # a stroke drawn on the picture fades after this many seconds unless pinned
# starts_at = "2026-11-24T07:30:00+01:00"
# ends_at = "2026-11-24T18:00:00+01:00"

# Feeds ORcast pulls itself (IP cameras), one table each; also through the API (technician,
# organizer). Pulled while the server runs, so they record; a camera that drops is pulled
# again (1 s doubling to 30 s) and its viewers resume on its next keyframe. on_demand = true
# pulls only while someone watches (the first viewer starts it) or the recording wants it.
# [[sources]]
# path = "hpb-masterclass/or3/room"      # event/theatre/feed
# url = "rtsp://viewer:password@10.1.3.20:554/stream1"   # rtsp:// or rtsps://; logs show viewer:***
# transport = "tcp"                      # tcp (interleaved, the default) or udp
# on_demand = false                      # true: only while watched or recorded
'''
