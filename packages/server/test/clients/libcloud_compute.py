"""Apache Libcloud's CloudStack driver against Nimbostack: sizes, images, nodes, volumes, keys.

Usage: libcloud_compute.py ENDPOINT APIKEY SECRET -> prints a JSON summary.
"""
import json
import sys
import time
from urllib.parse import urlparse

from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

endpoint, key, secret = sys.argv[1:4]
u = urlparse(endpoint)
Driver = get_driver(Provider.CLOUDSTACK)
driver = Driver(key, secret, host=u.hostname, port=u.port, path=u.path, secure=False)
out = {}

location = driver.list_locations()[0]
size = [s for s in driver.list_sizes() if s.name == "Small Instance"][0]
image = driver.list_images(location=location)[0]
out["size_ram"] = size.ram
out["image"] = image.name
key_pair = driver.create_key_pair("lc-key")
out["key_fingerprint"] = key_pair.fingerprint
node = driver.create_node(name="lc-node", size=size, image=image, location=location, ex_keyname="lc-key")
out["created_state"] = node.state
driver.ex_start(node)
nodes = driver.list_nodes()
out["nodes"] = [(n.name, n.state, n.private_ips) for n in nodes]
out["rebooted"] = driver.reboot_node(node)
volume = driver.create_volume(size=1, name="lc-vol", location=location)
out["volume_attached"] = driver.attach_volume(node, volume)
out["volume_detached"] = driver.detach_volume(volume)
out["volume_destroyed"] = driver.destroy_volume(volume)
out["destroyed"] = driver.destroy_node(node, ex_expunge=True)
out["left"] = len(driver.list_nodes())
driver.delete_key_pair(key_pair)
out["keys_left"] = [k.name for k in driver.list_key_pairs()]
print(json.dumps(out, default=str))
