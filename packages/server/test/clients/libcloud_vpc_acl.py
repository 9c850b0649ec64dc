"""libcloud's CloudStack compute driver on a VPC's network ACLs, as its users call it: a VPC, an
ACL list made for it, items added to it, a tier created and switched to that list, every list and
item listed back, then the tier and the VPC deleted. Prints what it saw as JSON.

Usage: libcloud_vpc_acl.py <endpoint> <api key> <secret key> <zone name>
"""
import json
import sys
from urllib.parse import urlparse

from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

endpoint, key, secret, zone_name = sys.argv[1:5]
url = urlparse(endpoint)
cls = get_driver(Provider.CLOUDSTACK)
driver = cls(key=key, secret=secret, host=url.hostname, port=url.port, path=url.path, secure=url.scheme == "https")

zone = next(z for z in driver.list_locations() if z.name == zone_name)
offering = next(o for o in driver.ex_list_vpc_offerings() if o.name == "Default VPC offering")
tier_offering = next(
    o for o in driver.ex_list_network_offerings() if o.name == "DefaultIsolatedNetworkOfferingForVpcNetworks"
)
out = {}
vpc = driver.ex_create_vpc("10.60.0.0/16", "libcloud VPC", "lc-vpc", offering, zone.id)
out["vpc"] = {"name": vpc.name, "cidr": vpc.cidr}
acl_list = driver.ex_create_network_acllist("lc-db-acl", vpc.id, description="database tier")
out["acl_list"] = {"id": acl_list.id, "name": acl_list.name}
item = driver.ex_create_network_acl("tcp", acl_list.id, "10.60.1.0/24", 5432, 5432, action="Allow", traffic_type="Ingress")
deny = driver.ex_create_network_acl("udp", acl_list.id, "10.60.1.0/24", 53, 53, action="Deny")
out["items_created"] = [item.id, deny.id]
tier = driver.ex_create_network(
    "lc-db", "lc-db", tier_offering, zone, gateway="10.60.2.1", netmask="255.255.255.0", vpc_id=vpc.id
)
out["replaced"] = driver.ex_replace_network_acllist(acl_list.id, tier.id)
out["lists"] = sorted(a.name for a in driver.ex_list_network_acllists())
out["items"] = sorted(
    [a.id, a.protocol, a.action, a.cidr_list, a.start_port, a.traffic_type]
    for a in driver.ex_list_network_acl()
    if a.acl_id == acl_list.id
)
out["tier_deleted"] = driver.ex_delete_network(tier)
out["vpc_deleted"] = driver.ex_delete_vpc(vpc)
print(json.dumps(out))
