"""A picture of a pipeline, as an SVG the MLflow UI's artifact viewer shows: layers from top to
bottom (longest path from the inputs), each ordered after its predecessors; parameters counted in the node boxes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from kedro_mlflow_starter.kedro_names import is_parameter

if TYPE_CHECKING:  # pragma: no cover
    from kedro.pipeline import Pipeline

_CHAR_W, _BOX_H, _GAP_X, _GAP_Y, _PAD = 7.2, 30, 24, 56, 24
_STYLE = {
    "node": ('fill="#1f2933" stroke="#1f2933"', 'fill="#ffffff"'),
    "input": ('fill="#e3f8e8" stroke="#2f9e44"', 'fill="#1f2933"'),
    "mlflow": ('fill="#e7f0ff" stroke="#1c6bd6"', 'fill="#1f2933"'),
    "data": ('fill="#f4f5f7" stroke="#9aa5b1"', 'fill="#1f2933"'),
}


def pipeline_svg(pipeline: Pipeline, catalog_types: Mapping[str, str] | None = None, title: str = "") -> str:
    """The SVG text of ``pipeline``: nodes dark, free inputs green, MLflow datasets blue."""
    catalog_types = catalog_types or {}
    free = {n for n in pipeline.inputs() if not is_parameter(n)}
    edges: list[tuple[str, str]] = []
    labels: dict[str, tuple[str, str]] = {}
    for node in pipeline.nodes:
        vid = f"n:{node.name}"
        params = sum(1 for i in node.inputs if is_parameter(i))
        label = node.name + (f"  (+{params} param{'s' if params > 1 else ''})" if params else "")
        labels[vid] = (label, "node")
        for name in node.inputs:
            if not is_parameter(name):
                edges.append((f"d:{name}", vid))
        for name in node.outputs:
            edges.append((vid, f"d:{name}"))
    for src, dst in edges:
        for vid in (src, dst):
            if vid.startswith("d:") and vid not in labels:
                name = vid[2:]
                mlflow = ".Mlflow" in f".{catalog_types.get(name, '')}"  # a dotted path or a bare class name
                labels[vid] = (name, "input" if name in free else "mlflow" if mlflow else "data")
    return _draw(labels, edges, _layers(labels, edges), title)


def _layers(labels: Mapping[str, tuple[str, str]], edges: list[tuple[str, str]]) -> list[list[str]]:
    preds: dict[str, list[str]] = {v: [] for v in labels}
    for src, dst in edges:
        preds[dst].append(src)
    depth: dict[str, int] = {}

    def level(vertex: str, seen: frozenset = frozenset()) -> int:
        if vertex not in depth:
            depth[vertex] = 0 if not preds[vertex] or vertex in seen else \
                1 + max(level(p, seen | {vertex}) for p in preds[vertex])
        return depth[vertex]

    for vertex in sorted(labels):
        level(vertex)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for vertex in sorted(labels):
        layers[depth[vertex]].append(vertex)
    position: dict[str, float] = {}
    for layer in layers:  # barycentre ordering: follow the predecessors' order
        layer.sort(key=lambda v: (sum(position.get(p, 0) for p in preds[v]) / max(len(preds[v]), 1), v))
        for index, vertex in enumerate(layer):
            position[vertex] = index
    return layers


def _draw(labels: Mapping[str, tuple[str, str]], edges: list[tuple[str, str]], layers: list[list[str]], title: str) -> str:
    width_of = {v: max(60.0, len(labels[v][0]) * _CHAR_W + 20) for v in labels}
    row_widths = [sum(width_of[v] for v in layer) + _GAP_X * (len(layer) - 1) for layer in layers]
    total_w = max(row_widths, default=200) + 2 * _PAD
    top = _PAD + (28 if title else 0)
    boxes: dict[str, tuple[float, float, float]] = {}
    for row, layer in enumerate(layers):
        x = (total_w - row_widths[row]) / 2
        y = top + row * (_BOX_H + _GAP_Y)
        for vertex in layer:
            boxes[vertex] = (x, y, width_of[vertex])
            x += width_of[vertex] + _GAP_X
    total_h = top + len(layers) * (_BOX_H + _GAP_Y) - _GAP_Y + _PAD
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{total_h:.0f}" '
        f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#7b8794"/></marker></defs>',
        f'<rect width="{total_w:.0f}" height="{total_h:.0f}" fill="#ffffff"/>',
    ]
    if title:
        out.append(f'<text x="{_PAD}" y="{_PAD + 8}" font-size="15" font-weight="bold" fill="#1f2933">{escape(title)}</text>')
    for src, dst in edges:
        x1, y1, w1 = boxes[src]
        x2, y2, w2 = boxes[dst]
        sx, sy, ex, ey = x1 + w1 / 2, y1 + _BOX_H, x2 + w2 / 2, y2
        mid = (sy + ey) / 2
        out.append(f'<path d="M {sx:.1f} {sy:.1f} C {sx:.1f} {mid:.1f}, {ex:.1f} {mid:.1f}, {ex:.1f} {ey:.1f}" '
                   'fill="none" stroke="#7b8794" stroke-width="1.3" marker-end="url(#arrow)"/>')
    for vertex, (x, y, w) in boxes.items():
        label, kind = labels[vertex]
        box_style, text_style = _STYLE[kind]
        radius = 14 if kind == "node" else 4
        out.append(f'<g><title>{escape(("node " if kind == "node" else "dataset ") + label)}</title>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{_BOX_H}" rx="{radius}" {box_style}/>'
                   f'<text x="{x + w / 2:.1f}" y="{y + _BOX_H / 2 + 4:.1f}" text-anchor="middle" {text_style}>'
                   f'{escape(label)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
