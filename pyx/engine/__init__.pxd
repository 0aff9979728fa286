# The cimport namespace of engine's compiled modules: the one place their .pxd declarations live.
# With -I pyx (as CMakeLists.txt passes to Cython), `from engine._loop cimport SocketTransport`
# finds pyx/engine/_loop.pxd; the wheel installs these files into the engine package, so a
# third-party extension cimports the same names from an installed engine.
#
#   declarations            implementation (engine_cython_module in CMakeLists.txt)
#   pyx/engine/_loop.pxd    pyx/loop/loop.pyx  (+ pyx/loop/*.pxi)    -> engine._loop
#   pyx/engine/_http.pxd    pyx/http/http.pyx  (+ pyx/http/*.pxi)    -> engine._http
#   pyx/engine/_ws.pxd      pyx/ws/ws.pyx      (+ pyx/ws/*.pxi)      -> engine._ws
#   (no .pxd: nothing cimports it) pyx/asgi/asgi.pyx (+ pyx/asgi/*.pxi) -> engine._asgi
#
# The .pyi stubs for Python callers sit beside the built modules, in engine/.
