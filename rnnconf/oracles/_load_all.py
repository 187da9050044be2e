"""Registers every built-in oracle."""
from . import register_oracle
from .hgrn import hgrn_oracle

register_oracle("hgrn", hgrn_oracle)
from .mingru import mingru_oracle, minlstm_oracle  # noqa: E402

register_oracle("mingru", mingru_oracle)
register_oracle("minlstm", minlstm_oracle)
from .hgrn_layer import hgrn_layer_oracle  # noqa: E402

register_oracle("hgrn-layer", hgrn_layer_oracle)
from .forgetting_attention import forgetting_attention_oracle  # noqa: E402

register_oracle("forgetting-attention", forgetting_attention_oracle)
from .forgetting_attention import acp_oracle  # noqa: E402

register_oracle("forgetting-attention-acp", acp_oracle)
from .aaren import aaren_oracle  # noqa: E402

register_oracle("aaren", aaren_oracle)
from .delta import delta_product_oracle, delta_rule_oracle, gated_delta_rule_oracle  # noqa: E402

register_oracle("delta-rule", delta_rule_oracle)
register_oracle("gated-delta-rule", gated_delta_rule_oracle)
register_oracle("delta-product", delta_product_oracle)
from .nonlinear import elman_oracle, gru_oracle, lstm_oracle, odyssey_oracle, slstm_oracle  # noqa: E402

register_oracle("lstm", lstm_oracle)
register_oracle("gru", gru_oracle)
register_oracle("elman", elman_oracle)
register_oracle("slstm", slstm_oracle)
register_oracle("lstm-odyssey", odyssey_oracle)
from .pararnn import paragru_oracle, paralstm_oracle  # noqa: E402

register_oracle("paragru", paragru_oracle)
register_oracle("paralstm", paralstm_oracle)
from .ssd import ssd_oracle  # noqa: E402

register_oracle("ssd", ssd_oracle)
