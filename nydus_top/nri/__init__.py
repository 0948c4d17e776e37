"""nydus-top's NRI client: containerd's Node Resource Interface spoken from Python.

``mux`` and ``ttrpc`` frame bytes, ``protocol`` is the sans-IO plugin connection, ``session``
runs it on asyncio against a real runtime and keeps a :class:`nydus_top.node.NodeModel` current.
"""
