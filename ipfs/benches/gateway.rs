//! Gateway throughput on 127.0.0.1: raw block requests per second with concurrent clients, and
//! CAR streaming MiB/s against reading the same file from disk (page cache warm) and against
//! the same server sending the file as plain bytes.
//!
//! `cargo bench -p otaledger-ipfs --features server,client --bench gateway -- 256M 16 5`
//! (file size, concurrent clients, runs; best of the runs is printed).

mod net_setup;

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use net_setup::{args, mib_s, parse_size, setup};
use otaledger_ipfs::traverse::{DagScope, blocks_for};

async fn stream_len(client: &reqwest::Client, url: url::Url, accept: &str) -> u64 {
    let mut resp = client
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut n = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        n += chunk.len() as u64;
    }
    n
}

fn main() {
    let args = args(&["1M", "4", "1"]);
    let size = parse_size(args.first().map(String::as_str).unwrap_or("256M"));
    let clients: usize = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(16);
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let s = setup(size).await;
        let client = reqwest::Client::new();
        let cids: Vec<_> = blocks_for(&s.store, &s.root, DagScope::Entity, None)
            .map(|b| b.unwrap().0)
            .collect();
        let cids = Arc::new(cids);
        let car_url = s.base.join(&format!("ipfs/{}?format=car&dag-scope=entity", s.root)).unwrap();
        let plain_url = s.base.join("plain").unwrap();
        let (mut best_blocks, mut best_car, mut best_plain, mut best_disk) = (0f64, 0f64, 0f64, 0f64);
        for _ in 0..runs {
            // Raw blocks: every block of the file once, split over `clients` concurrent clients.
            let t = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (client, cids, base) = (client.clone(), Arc::clone(&cids), s.base.clone());
                tasks.push(tokio::spawn(async move {
                    for cid in cids.iter().skip(c).step_by(clients) {
                        let url = base.join(&format!("ipfs/{cid}?format=raw")).unwrap();
                        stream_len(&client, url, "application/vnd.ipld.raw").await;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            best_blocks = best_blocks.max(cids.len() as f64 / t.elapsed().as_secs_f64());

            let t = Instant::now();
            let n = stream_len(&client, car_url.clone(), "application/vnd.ipld.car").await;
            assert!(n > s.size);
            best_car = best_car.max(mib_s(s.size, t.elapsed().as_secs_f64()));

            let t = Instant::now();
            assert_eq!(stream_len(&client, plain_url.clone(), "*/*").await, s.size);
            best_plain = best_plain.max(mib_s(s.size, t.elapsed().as_secs_f64()));

            let t = Instant::now();
            let mut f = std::fs::File::open(&s.file).unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            while f.read(&mut buf).unwrap() > 0 {}
            best_disk = best_disk.max(mib_s(s.size, t.elapsed().as_secs_f64()));
        }
        println!(
            "{size} bytes, {} blocks, best of {runs}: raw blocks {best_blocks:.0}/s with {clients} clients; CAR stream {best_car:.0} MiB/s; plain HTTP {best_plain:.0} MiB/s; disk read {best_disk:.0} MiB/s",
            cids.len()
        );
    });
}
