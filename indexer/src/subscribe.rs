//! `eth_subscribe` `newHeads` over a node's WebSocket endpoint: each
//! notification only wakes the follower for a pass, so every new head still
//! goes through the pass's fork check and chaining by parent hash (nothing in
//! the notification is believed). Polling goes on beside it at the configured
//! interval: a WebSocket that drops or never connects is reconnected with
//! backoff while the indexer keeps following by polls.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

/// Largest WebSocket message or frame accepted (a block header is about 1 KiB).
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Subscribes to `newHeads` at `url` and calls `wake.notify_one()` per
/// notification until the connection ends; the error says why it ended.
pub async fn new_heads(url: &str, wake: &Notify) -> Result<(), String> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let request = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]
    });
    ws.send(Message::text(request.to_string()))
        .await
        .map_err(|e| format!("subscribing: {e}"))?;
    let mut subscribed = false;
    while let Some(message) = ws.next().await {
        let message = message.map_err(|e| e.to_string())?;
        let text = match message {
            Message::Text(t) => t,
            Message::Close(_) => return Err("closed by the node".into()),
            _ => continue,
        };
        let value: serde_json::Value =
            serde_json::from_str(text.as_str()).map_err(|e| format!("invalid json: {e}"))?;
        if !subscribed {
            if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
                return Err(format!("eth_subscribe refused: {error}"));
            }
            if value.get("id").is_some() && value.get("result").is_some() {
                subscribed = true;
                // Anything that happened before the subscription: one pass.
                wake.notify_one();
            }
            continue;
        }
        if value.get("method").and_then(|m| m.as_str()) == Some("eth_subscription") {
            wake.notify_one();
        }
    }
    Err("connection ended".into())
}

/// Keeps a `newHeads` subscription at `url` alive forever, reconnecting with
/// backoff (1 s doubling to 30 s); spawned beside the follower.
pub async fn follow(url: String, wake: Arc<Notify>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = std::time::Instant::now();
        if let Err(reason) = new_heads(&url, &wake).await {
            tracing::warn!(%url, %reason, "newHeads subscription ended; polling meanwhile");
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
