"""Reads zones, sizes, disk offerings and OS types through Apache libcloud's CloudStack driver.

usage: libcloud_infra.py <api url> <api key> <secret key>; prints JSON.
"""
import json
import sys
from urllib.parse import urlparse

from libcloud.compute.providers import Provider, get_driver

url, key, secret = sys.argv[1:4]
u = urlparse(url)
driver = get_driver(Provider.CLOUDSTACK)(key, secret, secure=False, host=u.hostname, port=u.port, path=u.path)
print(json.dumps({
    'locations': [{'id': loc.id, 'name': loc.name} for loc in driver.list_locations()],
    'sizes': [{'id': s.id, 'name': s.name, 'ram': s.ram, 'cpu': s.extra.get('cpu')} for s in driver.list_sizes()],
    'disks': [{'id': d.id, 'name': d.name, 'size': d.size, 'customizable': d.customizable} for d in driver.ex_list_disk_offerings()],
    'ostypes': len(driver.ex_list_os_types()),
}))
