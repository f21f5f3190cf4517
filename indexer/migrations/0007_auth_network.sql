-- Sign-in limits per client network (docs/auth.md, "Limits"): each session
-- records the network it logged in from (an IPv4 address, an IPv6 /48), so
-- live sessions are capped per network and, when the table is full, the
-- network holding the most gives up its oldest; signed-in requests are
-- rate-limited per network as well as per session. Sessions from before
-- this column share the empty network.
ALTER TABLE auth_sessions ADD COLUMN client_network TEXT NOT NULL DEFAULT '';
CREATE INDEX auth_sessions_network ON auth_sessions (client_network, created_at);
