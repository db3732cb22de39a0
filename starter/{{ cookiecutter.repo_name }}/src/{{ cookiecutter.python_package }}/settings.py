"""Project settings: Kedro's defaults suit this project. For what can be set here, see
https://docs.kedro.org/en/stable/configure/configuration_basics/

MLflow tracking needs no line in this file: kedro-mlflow-starter registers its hook
itself when it is installed, and reads conf/<env>/mlflow.yml. To run the project without
tracking, opt out of that hook:

    DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow-starter",)
"""
