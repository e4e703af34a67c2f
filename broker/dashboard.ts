/**
 * The broker's dashboard at GET /: the cluster as this broker sees it, refreshed every 2 s. Plain
 * server-rendered HTML: no scripts to load, nothing to install.
 */
import type { Clock } from '../common/clock.js';
import type { MetadataImage } from '../protocol/metadata/image.js';
import type { ReplicaManager } from './replica-manager.js';

const esc = (s: string | number) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderDashboard(brokerId: number, image: MetadataImage, replicas: ReplicaManager, hasLease: boolean, clock: Clock): string {
  const now = clock.monotonicMs();
  const brokers = [...image.brokers.values()].sort((a, b) => a.brokerId - b.brokerId);
  const rows: string[] = [];
  for (const topic of [...image.topics.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    for (const p of topic.partitions) {
      const local = replicas.partitions.get(`${p.topic}-${p.partition}`);
      const lag = local?.leaderState?.followerLag(local.log.logEndOffset, now).map((l) => `${l.brokerId}: ${l.records} rec / ${Math.round(l.ms)} ms`).join(', ') ?? '';
      const cls = p.leader === -1 ? 'offline' : p.isr.length < p.replicas.length ? 'under' : '';
      rows.push(`<tr class="${cls}"><td>${esc(p.topic)}-${p.partition}</td><td>${p.leader === -1 ? 'none' : p.leader}</td><td>${p.leaderEpoch}</td><td>${p.replicas.join(', ')}</td><td>${p.isr.join(', ')}</td><td>${local === undefined ? '' : `${local.log.logStartOffset}–${local.log.logEndOffset} (HW ${local.log.highWatermark})`}</td><td>${esc(lag)}</td></tr>`);
    }
  }
  const failovers = image.failovers.slice(-20).reverse().map((f) => `<tr><td>${new Date(f.timeMs).toISOString()}</td><td>${esc(f.topic)}-${f.partition}</td><td>${f.oldLeader === -1 ? 'none' : f.oldLeader} → ${f.newLeader === -1 ? 'none' : f.newLeader}</td><td>${f.leaderEpoch}</td><td>${esc(f.trigger)}</td><td>${f.lagAtPromotion}</td><td>${f.recordsLost}</td></tr>`);
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>Tributary broker ${brokerId}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f4f4f4}.offline{background:#fdd}.under{background:#ffd}.ok{color:#070}.bad{color:#a00}</style></head><body>
<h1>Tributary — broker ${brokerId}</h1>
<p>Lease: <b class="${hasLease ? 'ok' : 'bad'}">${hasLease ? 'held' : 'none'}</b> · metadata index ${image.appliedIndex} · ${image.topics.size} topics</p>
<h2>Brokers</h2><table><tr><th>id</th><th>address</th><th>state</th></tr>${brokers.map((b) => `<tr><td>${b.brokerId}</td><td>${esc(b.address)}</td><td class="${b.fenced ? 'bad' : 'ok'}">${b.fenced ? 'fenced' : 'alive'}</td></tr>`).join('')}</table>
<h2>Partitions</h2><table><tr><th>partition</th><th>leader</th><th>epoch</th><th>replicas</th><th>ISR</th><th>log here</th><th>follower lag (if led here)</th></tr>${rows.join('')}</table>
<h2>Recent failovers</h2><table><tr><th>time</th><th>partition</th><th>leader</th><th>epoch</th><th>trigger</th><th>lag at promotion</th><th>records lost</th></tr>${failovers.join('')}</table>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></p></body></html>`;
}
