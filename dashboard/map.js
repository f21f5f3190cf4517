// The fleet map: every device a dot on one <canvas>; a uniform spatial grid
// answers hover and click; redraws are batched into one animation frame.
export const COLOURS = { red: '#d62828', amber: '#f4a100', green: '#2a9d3f', grey: '#8d8d8d', none: '#4a6fa5' };

export class FleetMap {
  constructor(canvas, onPick, onHover) {
    this.canvas = canvas; this.ctx = canvas.getContext('2d');
    this.devices = []; this.visible = []; this.grid = new Map(); this.cell = 16; this.pending = false;
    this.projection = 'xy';
    canvas.addEventListener('mousemove', (e) => onHover(this.pick(e), e));
    canvas.addEventListener('mouseleave', () => onHover(null));
    canvas.addEventListener('click', (e) => { const d = this.pick(e); if (d) onPick(d); });
    new ResizeObserver(() => this.schedule()).observe(canvas);
  }
  // Plane coordinates of a device's position.
  xy(d) { return this.projection === 'latlon' ? [d.position[1], -d.position[0]] : d.position; }
  setDevices(devices, visible) { this.devices = devices; this.visible = visible; this.schedule(); }
  schedule() { if (!this.pending) { this.pending = true; requestAnimationFrame(() => { this.pending = false; this.draw(); }); } }
  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
    const ctx = this.ctx; ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.clearRect(0, 0, w, h);
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const d of this.devices) { const [x, y] = this.xy(d); minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
    const pad = 12, spanX = Math.max(maxX - minX, 1e-9), spanY = Math.max(maxY - minY, 1e-9);
    const scale = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
    const ox = (w - spanX * scale) / 2, oy = (h - spanY * scale) / 2;
    const r = Math.max(1.5, Math.min(6, Math.sqrt((w * h) / Math.max(this.devices.length, 1)) / 4));
    this.radius = r; this.grid = new Map(); this.cell = Math.max(8, r * 4);
    const byColour = new Map();
    for (const d of this.visible) {
      const [x, y] = this.xy(d);
      d.sx = ox + (x - minX) * scale; d.sy = oy + (y - minY) * scale;
      const key = `${Math.floor(d.sx / this.cell)},${Math.floor(d.sy / this.cell)}`;
      let bucket = this.grid.get(key); if (!bucket) this.grid.set(key, bucket = []); bucket.push(d);
      let list = byColour.get(d.status); if (!list) byColour.set(d.status, list = []); list.push(d);
    }
    for (const [status, list] of byColour) {
      ctx.fillStyle = COLOURS[status] || '#000'; ctx.beginPath();
      for (const d of list) { ctx.moveTo(d.sx + r, d.sy); ctx.arc(d.sx, d.sy, r, 0, 2 * Math.PI); }
      ctx.fill();
    }
    this.canvas.dataset.drawn = String(this.visible.length);
  }
  // The device under a pointer event (nearest within its radius + 3 px).
  pick(e) {
    const rect = this.canvas.getBoundingClientRect(); const x = e.clientX - rect.left, y = e.clientY - rect.top;
    const cx = Math.floor(x / this.cell), cy = Math.floor(y / this.cell); let best = null, bestD = (this.radius + 3) ** 2;
    for (let i = -1; i <= 1; i++) for (let j = -1; j <= 1; j++) {
      for (const d of this.grid.get(`${cx + i},${cy + j}`) || []) { const dd = (d.sx - x) ** 2 + (d.sy - y) ** 2; if (dd <= bestD) { best = d; bestD = dd; } }
    }
    return best;
  }
}
