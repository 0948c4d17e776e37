"""nydus-top's NRI client: containerd's Node Resource Interface spoken from Python.

``mux`` and ``ttrpc`` frame bytes, ``protocol`` is the sans-IO plugin connection, ``convert``
maps NRI messages to node-model records, and ``session`` runs it all on asyncio against a
real runtime, keeping a :class:`nydus_top.model.node.NodeModel` current:

    model = NodeModel()
    session = PluginSession(model, socket_path=None, name="nydus-top", idx="90")
    remove = session.add_start_hook(hook)   # async hook(pod, container, deadline) -> None
    await session.run_forever()             # or SessionThread(session).start() / .stop()

The generated ``nri_api_pb2`` / ``nri_ttrpc_pb2`` modules come from the ``.proto`` files here
at install time (setup.py); they import nothing but protobuf.
"""
