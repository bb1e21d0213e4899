"""pythreejs objects of a scene: meshes, points, lines and text sprites from :class:`SceneObject`,
the camera's look-at quaternion and its headlight (pythreejs is imported lazily: plain drawing and
saving need no widgets)."""

from __future__ import annotations

import numpy as np

from .scene import SceneObject, _rgba, _unique_edges, vertex_normals


def _three(obj: SceneObject, diag: float):
    """Build the pythreejs object of a SceneObject (imported lazily: plain drawing needs no widgets)."""
    import pythreejs as p3

    sh = obj.shading
    attrs = {"position": p3.BufferAttribute(obj.position.astype(np.float32), normalized=False)}
    if obj.color is not None:
        attrs["color"] = p3.BufferAttribute(obj.color.astype(np.float32), normalized=False)
    vc = "VertexColors" if obj.color is not None else "NoColors"
    if obj.kind == "mesh":
        attrs["normal"] = p3.BufferAttribute(vertex_normals(obj.position, obj.index), normalized=False)
        mat = dict(vertexColors=vc, side=sh["side"], roughness=sh["roughness"], metalness=sh["metalness"],
                   flatShading=bool(sh["flat"]), transparent=sh["opacity"] < 1, opacity=sh["opacity"],
                   depthWrite=sh["opacity"] >= 1, polygonOffset=True, polygonOffsetFactor=1,
                   polygonOffsetUnits=5, color="#ffffff" if obj.color is not None else obj.base_color)
        if obj.uv is not None:
            attrs["uv"] = p3.BufferAttribute(obj.uv.astype(np.float32), normalized=False)
            mat.update(color="#ffffff", map=p3.DataTexture(
                data=_rgba(obj.texture[::-1]), format="RGBAFormat", type="UnsignedByteType",
                minFilter="LinearFilter", magFilter="LinearFilter", generateMipmaps=False))
        geom = p3.BufferGeometry(attributes=attrs, index=p3.BufferAttribute(
            obj.index.astype(np.uint32).ravel(), normalized=False))
        mesh = p3.Mesh(geometry=geom, material=p3.MeshStandardMaterial(**mat))
        if sh["wireframe"]:
            edges = _unique_edges(obj.index, obj.position)
            seg = obj.position[edges.ravel()]
            mesh.add(p3.LineSegments(
                p3.BufferGeometry(attributes={"position": p3.BufferAttribute(seg, normalized=False)}),
                p3.LineBasicMaterial(color=sh["wire_color"], linewidth=sh["wire_width"])))
        return mesh
    if obj.kind == "points":
        size = sh["point_size"] or 0.02 * diag
        mat = dict(size=size, vertexColors=vc, color="#ffffff" if obj.color is not None else obj.base_color)
        if sh["point_shape"] == "circle":
            mat.update(map=p3.DataTexture(data=_disc(), format="RGBAFormat", type="UnsignedByteType",
                                          minFilter="LinearFilter", generateMipmaps=False),
                       alphaTest=0.5, transparent=True)
        return p3.Points(p3.BufferGeometry(attributes=attrs), p3.PointsMaterial(**mat))
    if obj.kind == "lines":
        mat = dict(linewidth=sh["line_width"], vertexColors=vc,
                   color="#ffffff" if obj.color is not None else obj.base_color)
        return p3.LineSegments(p3.BufferGeometry(attributes=attrs), p3.LineBasicMaterial(**mat))
    size = sh["text_size"] or 0.06 * diag
    tex = p3.TextTexture(string=obj.text, color=obj.base_color, size=64, squareTexture=False)
    sprite = p3.Sprite(material=p3.SpriteMaterial(map=tex, transparent=True), position=tuple(
        map(float, obj.position[0])))
    sprite.scale = (size * 0.6 * max(len(obj.text), 1), size, 1.0)
    return sprite


def _disc(n: int = 32) -> np.ndarray:
    r = np.hypot(*(np.indices((n, n)) - (n - 1) / 2)) <= n / 2
    return np.where(r[..., None], 255, 0).repeat(4, -1).astype(np.uint8)


def look_at_quaternion(eye, target, up=(0.0, 1.0, 0.0)) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) turning a three.js camera (looking down its -z) at ``target``."""
    from scipy.spatial.transform import Rotation

    z = np.asarray(eye, float) - np.asarray(target, float)
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-9 else np.cross([0.0, 0.0, 1.0], z)
    y = np.cross(z, x)
    return tuple(float(q) for q in Rotation.from_matrix(np.stack([x, y, z], 1)).as_quat())


def _headlight(p3):
    """A directional light riding on the camera, shining along the view direction.

    Its ``target`` and ``shadow`` are made here: left unset, pythreejs 2.4's front end creates them
    itself and the kernel then answers with an invalid state ("Error setting state: t.on is not a
    function" in the browser console, once per viewer).
    """
    target = p3.Object3D(position=[0.0, 0.0, -1.0])
    shadow = p3.DirectionalLightShadow(camera=p3.OrthographicCamera(-5, 5, 5, -5, 0.5, 500))
    return p3.DirectionalLight(color="white", position=[0.0, 0.0, 1.0], intensity=0.6, target=target,
                               shadow=shadow), target

