"""Sets of cities a round can be created for."""

from __future__ import annotations

from grading.rounds import CityEntry

# Shandong's 16 prefecture-level cities by administrative division code (莱芜 371200 merged into
# 济南 in 2019).
SHANDONG = [
    CityEntry("370100", "济南市", "Jinan"),
    CityEntry("370200", "青岛市", "Qingdao"),
    CityEntry("370300", "淄博市", "Zibo"),
    CityEntry("370400", "枣庄市", "Zaozhuang"),
    CityEntry("370500", "东营市", "Dongying"),
    CityEntry("370600", "烟台市", "Yantai"),
    CityEntry("370700", "潍坊市", "Weifang"),
    CityEntry("370800", "济宁市", "Jining"),
    CityEntry("370900", "泰安市", "Tai'an"),
    CityEntry("371000", "威海市", "Weihai"),
    CityEntry("371100", "日照市", "Rizhao"),
    CityEntry("371300", "临沂市", "Linyi"),
    CityEntry("371400", "德州市", "Dezhou"),
    CityEntry("371500", "聊城市", "Liaocheng"),
    CityEntry("371600", "滨州市", "Binzhou"),
    CityEntry("371700", "菏泽市", "Heze"),
]
REGIONS = {"shandong": SHANDONG}
