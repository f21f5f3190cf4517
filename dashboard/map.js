// The fleet map: every device a dot on one <canvas>; a uniform spatial grid
// answers hover and click; redraws are batched into one animation frame.
// In selection mode (the owner's purchase flow) a click toggles a device and a
// drag selects every drawn device inside the box; selected devices get a ring.
export const COLOURS = { red: '#d62828', amber: '#f4a100', green: '#2a9d3f', grey: '#8d8d8d', none: '#4a6fa5' };

export class FleetMap {
  constructor(canvas, onPick, onHover) {
    this.canvas = canvas; this.ctx = canvas.getContext('2d');
    this.devices = []; this.visible = []; this.grid = new Map(); this.cell = 16; this.pending = false;
    this.projection = 'xy';
    // Selection (set by the dApp): indexes ringed, and what a click or a box selects.
    this.selected = new Set(); this.selectMode = false; this.onToggle = null; this.onBox = null;
    this.box = null; this.drag = null;
    // Set by the sign-in's "Pick on map": the next click gives a position, not a device.
    this.onPoint = null;
    canvas.addEventListener('mousemove', (e) => onHover(this.pick(e), e));
    canvas.addEventListener('mouseleave', () => onHover(null));
    canvas.addEventListener('click', (e) => {
      if (this.onPoint) { const at = this.position(e); if (at) this.onPoint(at); return; }
      if (this.selectMode) return; const d = this.pick(e); if (d) onPick(d);
    });
    canvas.addEventListener('pointerdown', (e) => {
      if (!this.selectMode || this.onPoint) return;
      const [x, y] = this.local(e); this.drag = { x, y, x2: x, y2: y };
      canvas.setPointerCapture?.(e.pointerId);
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.drag) return;
      [this.drag.x2, this.drag.y2] = this.local(e); this.showBox();
    });
    canvas.addEventListener('pointerup', (e) => {
      const drag = this.drag; this.drag = null; this.showBox();
      if (!drag) return;
      [drag.x2, drag.y2] = this.local(e);
      if (Math.abs(drag.x2 - drag.x) < 4 && Math.abs(drag.y2 - drag.y) < 4) {
        const d = this.pick(e); if (d && this.onToggle) this.onToggle(d);
      } else if (this.onBox) {
        const [x1, x2] = [Math.min(drag.x, drag.x2), Math.max(drag.x, drag.x2)];
        const [y1, y2] = [Math.min(drag.y, drag.y2), Math.max(drag.y, drag.y2)];
        this.onBox(this.visible.filter((d) => d.sx >= x1 && d.sx <= x2 && d.sy >= y1 && d.sy <= y2));
      }
    });
    canvas.addEventListener('pointercancel', () => { this.drag = null; this.showBox(); });
    new ResizeObserver(() => this.schedule()).observe(canvas);
  }
  local(e) { const r = this.canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
  // The drag rectangle (an element over the canvas, so redraws need not know about it).
  showBox() {
    if (!this.box) return;
    const d = this.drag; this.box.hidden = !d; if (!d) return;
    Object.assign(this.box.style, { left: `${Math.min(d.x, d.x2)}px`, top: `${Math.min(d.y, d.y2)}px`, width: `${Math.abs(d.x2 - d.x)}px`, height: `${Math.abs(d.y2 - d.y)}px` });
  }
  // The device position (in the fleet's projection) under a pointer event, from the last draw.
  position(e) {
    const v = this.view; if (!v) return null;
    const [px, py] = this.local(e);
    const x = v.minX + (px - v.ox) / v.scale, y = v.minY + (py - v.oy) / v.scale;
    return this.projection === 'latlon' ? [-y, x] : [x, y];
  }
  setSelected(indexes) { this.selected = indexes; this.schedule(); }
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
    this.view = { minX, minY, scale, ox, oy };
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
    // Selected devices: a ring outside the dot (the dot's own colour stays visible).
    if (this.selected.size) {
      ctx.strokeStyle = '#16213e'; ctx.lineWidth = 2; ctx.beginPath();
      for (const d of this.visible) if (this.selected.has(d.index)) { ctx.moveTo(d.sx + r + 3, d.sy); ctx.arc(d.sx, d.sy, r + 3, 0, 2 * Math.PI); }
      ctx.stroke();
    }
    this.canvas.dataset.drawn = String(this.visible.length);
  }
  // The device under a pointer event (nearest within its radius + 3 px).
  pick(e) {
    const [x, y] = this.local(e);
    const cx = Math.floor(x / this.cell), cy = Math.floor(y / this.cell); let best = null, bestD = (this.radius + 3) ** 2;
    for (let i = -1; i <= 1; i++) for (let j = -1; j <= 1; j++) {
      for (const d of this.grid.get(`${cx + i},${cy + j}`) || []) { const dd = (d.sx - x) ** 2 + (d.sy - y) ** 2; if (dd <= bestD) { best = d; bestD = dd; } }
    }
    return best;
  }
}
