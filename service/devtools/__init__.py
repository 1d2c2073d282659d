"""Stand-ins and writers for tests and drills: never imported by the operational path.

``replay``: a stand-in GONG archive over HTTP (``synmag replay``); ``gong_writer``: GONG-format
frames from dataset or synthetic images. Their data (a real GONG header as a template) are
package data here, so nothing reads another package's test data at run time.
"""
